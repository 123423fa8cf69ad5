#!/bin/bash
# Runs HERE: the payload is the H100 run's (wheels of AutoAWQ's world, llama-cpp-python's Python side, the
# llama.cpp source it vendors, the embedded tokenizer), gathered in .device/ (git-ignored, ~41 MB).
exec "$(dirname "$0")/../h100-qwen3-4b-shape/prepare_payload.sh"
