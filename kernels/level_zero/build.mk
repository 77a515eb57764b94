# build.mk: -included by the Makefile. Compiles the OpenCL backend's kernels (kernels/clk/*.cl,
# one program) to SPIR-V once per variant with kernels/level_zero/cl2spv.sh and embeds the modules
# as generated C in $(BUILD)/gen/ (the .spv files stay beside it for the spirv test stage).
L0_CL  := $(sort $(wildcard kernels/clk/*.cl))
L0_GEN := $(BUILD)/gen/l0_spirv.c
GEN_SRC += $(L0_GEN)

# The tool set the modules were made with (cl2spv.sh --toolset), rewritten only when it changes:
# `make run` on a fresh machine builds before `make test` installs the SPIR-V tools, and the
# module table must be rebuilt then rather than stay "missing at build time".
L0_TOOLSET := $(BUILD)/gen/l0_toolset.txt
$(L0_TOOLSET): FORCE
	@mkdir -p $(@D)
	$(Q)$(call write_if_changed,$@,kernels/level_zero/cl2spv.sh --toolset)

$(L0_GEN): $(L0_CL) kernels/level_zero/cl2spv.sh kernels/level_zero/build.mk $(L0_TOOLSET)
	@mkdir -p $(@D)
	@echo "SPIRV $(L0_CL)"
	$(Q)kernels/level_zero/cl2spv.sh --embed $@ $(L0_CL)

# The test-only Level Zero driver (tests/l0driver/) that runs these modules on OpenCL/PoCL through
# the stock loader; tests/stages/level_zero.sh builds it. It links libOpenCL (test machines only).
L0_TEST_DRIVER := $(BUILD)/libp3_l0_test_driver.so
# l0graph.c mocks the NPU graph extension (P3_L0DRV_GRAPH_EXT=1) for the NPU backend's tests.
$(L0_TEST_DRIVER): tests/l0driver/l0driver.c tests/l0driver/l0graph.c tests/l0driver/l0graph.h \
                   kernels/level_zero/npu_graph_ext.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -fPIC -shared -O1 -g $(WARN) -Ikernels/level_zero -o $@ \
	    tests/l0driver/l0driver.c tests/l0driver/l0graph.c -lOpenCL -lm
