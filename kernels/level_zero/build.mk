# build.mk: -included by the Makefile. Compiles the Level Zero kernels (OpenCL C) to one SPIR-V
# module with kernels/level_zero/cl2spv.sh and embeds it as generated C in $(BUILD)/gen/.
L0_CL  := kernels/level_zero/l0_kernels.cl
L0_GEN := $(BUILD)/gen/l0_spirv.c
GEN_SRC += $(L0_GEN)

$(L0_GEN): $(L0_CL) kernels/level_zero/cl2spv.sh kernels/level_zero/build.mk
	@mkdir -p $(@D)
	@echo "SPIRV $(L0_CL)"
	$(Q)kernels/level_zero/cl2spv.sh --embed $@ $(L0_CL)
