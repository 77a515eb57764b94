# build.mk: -included by the Makefile. Embeds the OpenCL C kernels of kernels/clk/ into the
# binary as generated C ($(BUILD)/gen/opencl_source.c), rebuilt when any .cl file changes.
OCL_CL  := $(sort $(wildcard kernels/clk/*.cl))
OCL_GEN := $(BUILD)/gen/opencl_source.c
GEN_SRC += $(OCL_GEN)

$(OCL_GEN): $(OCL_CL) kernels/opencl/embed_cl.sh kernels/opencl/build.mk
	@mkdir -p $(@D)
	@echo "EMBED $(OCL_CL)"
	$(Q)kernels/opencl/embed_cl.sh $@ $(OCL_CL)
