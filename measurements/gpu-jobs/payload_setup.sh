# Sourced by the GPU hosts' job scripts (measurements/*-qwen3-4b-shape/run_on_device.sh): setup() installs the
# payload that prepare_payload.sh carried in .device/ on the offline GPU host. Needs ROOT and DEV set.

setup() {
  # the payload is copied off the working tree: a later call's sync removes .device unless it carries it
  # (or its compressed copy, .device-pack/payload.tar.xz, where the tree and the payload pass 64 MiB together)
  if [ -f .device-pack/payload.tar.xz ]; then
    rm -rf "$DEV" && mkdir -p "$DEV" && tar xJf .device-pack/payload.tar.xz -C "$DEV"
  else
    rm -rf "$DEV" && cp -r .device "$DEV"
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $DEV/whl-main/*.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/awqsite $DEV/whl-awq/*.whl
  cp -r "$DEV"/site/llama_cpp "$DEV"/site/llama_cpp_python-*.dist-info /tmp/site/
  # transformers reads a GGUF only when the package `gguf` has metadata: the vendored gguf-py is it
  mkdir -p /tmp/site/gguf-0.19.0.dist-info
  printf 'Metadata-Version: 2.1\nName: gguf\nVersion: 0.19.0\n' > /tmp/site/gguf-0.19.0.dist-info/METADATA
  touch /tmp/site/gguf-0.19.0.dist-info/RECORD
  # AutoAWQ imports `datasets` at module level only to load calibration sets by name; ours is a list of ids
  mkdir -p /tmp/awqsite/datasets
  printf 'def load_dataset(*a, **k):\n    raise RuntimeError("datasets is not installed on this offline host")\n' \
    > /tmp/awqsite/datasets/__init__.py
  # the AutoAWQ "environment" (calibration only): the host's torch + AutoAWQ 0.2.9 with transformers 4.51.3
  mkdir -p /tmp/venvs/autoawq/bin
  printf '#!/bin/sh\nPYTHONPATH=/tmp/awqsite:%s:%s/llama.cpp/gguf-py exec python3 "$@"\n' "$ROOT" "$DEV" \
    > /tmp/venvs/autoawq/bin/python
  chmod +x /tmp/venvs/autoawq/bin/python
  touch /tmp/venvs/autoawq/.installed  # harness/envs.py takes an environment as made only with its stamp
}
