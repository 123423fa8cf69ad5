"""The settings of a run, section by section: what every cell measures ([eval]), the lm-eval tasks ([tasks]),
the AWQ recipe ([awq]) and the run itself ([run]). Runtimes declare their own sections next to their code
(core.registry). Each field is a command-line option and a config-file key (core.options)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from core.options import opt


def default_threads() -> int:
    """$QC_THREADS when set (make test runs its tests side by side, one thread each), else physical cores where
    known, else logical CPUs (llama-bench's default is physical cores)."""
    if os.environ.get("QC_THREADS", "").isdigit() and int(os.environ["QC_THREADS"]) > 0:
        return int(os.environ["QC_THREADS"])
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:  # psutil missing or unable to tell
        pass
    return os.cpu_count() or 1


@dataclass(frozen=True)
class RunOptions:
    """What to compare: the model, the variants and runtimes, inputs and output"""

    model: str | None = opt(None, "local HF model folder or hub id (default: the embedded SmolLM2-135M-Instruct); "
                                  "repeat --model for several models, each in OUT/<model>/")
    models: tuple[str, ...] = opt((), "several models in one invocation (config file: models = [...])", cli=False)
    out: Path | None = opt(None, "run folder (default: runs/<model-slug>/)")
    variants: tuple[str, ...] = opt((), "comma-separated variants (`quantcompare list variants`; default: the default set)")
    runtimes: tuple[str, ...] = opt((), "comma-separated runtimes (`quantcompare list runtimes`; default: the default set)")
    calib: Path | None = opt(None, "calibration text (.txt, or .jsonl with a 'text' field; default: shipped general text)")
    eval_text: Path | None = opt(None, "evaluation text (default: the shipped WikiText-2 raw test)")
    force: bool = opt(False, "rebuild artifacts and re-run every cell")
    synthetic_weights: str | None = opt(None, "performance only: a model of this shape (qwen3-4b, llama-8b, qwen3-32b, llama-70b, "
                                              "tiny-qwen3) with random weights: every measure runs and is timed; no quality figure is reported", metavar="SHAPE")
    tokenizer: Path | None = opt(None, "tokenizer folder for --synthetic-weights (default: the embedded SmolLM2 one)")
    notes: tuple[str, ...] = opt((), "statements the report must carry", cli=False)
    build_only: bool = opt(False, "build (or reuse) the variants, evaluate nothing")
    trust_remote_code: bool = opt(False, "accept a source that ships its own modelling code (auto_map); "
                                         "transformers' built-in implementation reads it")
    allow_pickle: bool = opt(False, "accept pickle .bin weights (read with torch's weights-only loader, rewritten as safetensors)")
    sensitivity: bool = opt(False, "first measure how much each tensor group matters (quantizing one group at a time; "
                                   "gguf-mix variants need it and turn it on)")
    plugins: tuple[str, ...] = opt((), "modules to import that register more runtimes or quantizers (comma-separated)",
                                   flag="--plugins", metavar="MODULES")
    profile: str = opt("auto", "the counts to measure with: quick (a first look that decides what it shows; the CPU "
                               "default), release (the counts every gate rule needs; the --device cuda default), auto "
                               "(by device); any count given as an option or in a config file wins (core/profiles.py)",
                       choices=("auto", "quick", "release"))
    executor: str = opt("local", "where builds and cells run: local (subprocesses of this host) or ray (tasks on a Ray "
                                 "cluster; `make setup-ray`)", choices=("local", "ray"))
    ray_address: str = opt("auto", "the Ray cluster to join (auto: the running one, else a local one is started)",
                           metavar="ADDRESS")


@dataclass(frozen=True)
class EvalSettings:
    """What every cell measures and how; part of each cell's cache key"""

    n_ctx: int = opt(512, "window length in tokens")
    # llama-perplexity scores the second half
    score_from: float = opt(0.5, "score tokens from this fraction of each window on")
    windows: int | None = opt(48, "number of evaluation windows (0: all)")
    window_choice: str = opt("spread", "spread: a seeded random sample of the text's windows, in text order; first: "
                                       "the first ones (llama-perplexity --chunks)", choices=("spread", "first"))
    window_seed: int = opt(0, "seed of the spread window choice")
    kld_top_k: int = opt(256, "reference top-k kept per position for KL divergence (a lower bound of the KLD; "
                              "0: the whole vocabulary, as --kld-exact)")
    prefill_tokens: int = opt(512, "prompt tokens of the speed measurement (llama-bench -p)")
    decode_tokens: int = opt(128, "generated tokens of the speed measurement (llama-bench -n)")
    speed_repeats: int = opt(3, "repeats of each speed measurement (the median is reported)")
    threads: int = opt(default_factory=default_threads, help="CPU threads for every runtime (default: physical cores)")
    seed: int = opt(0, "seed of every runtime (sampling, random weights of synthetic models)")
    device: str = opt("cpu", "where runtimes run and AWQ calibrates (cuda: float16, llama.cpp offloads every layer)",
                      choices=("cpu", "cuda"))
    decode_batches: tuple[int, ...] = opt((1,), "decode tok/s at these batch sizes (batch 1 always)")
    # > 0: every cell also returns its logits for this many tokens, and each quantized runtime is
    # checked against the dequantized reference of the same weights (evaluators/kernel_check.py)
    kernel_check_tokens: int = opt(0, "check each quantized runtime's logits on this many tokens against the "
                                      "dequantized weights (0: off)")
    # GPU runs: the pool of GPUs (0: every visible one); each cell takes the fewest that hold it
    # (harness/gpu_plan.py)
    gpus: int = opt(0, "GPUs to use with --device cuda (0: every visible one); a cell takes the fewest that hold it")
    # greedy generations against fp16's (harness/generation.py): prompts per set (chat questions, text openings)
    gen_prompts: int = opt(32, "greedy generation: prompts per set (chat questions and text openings); 0: no generation")
    gen_tokens: int = opt(64, "greedy generation: new tokens per prompt")
    gen_seed: int = opt(0, "seed of the generation prompts' choice (0: the first chat questions and evenly spread "
                           "text openings; another seed draws both at random from the same pools)")
    # long windows with planted facts (harness/long_probes.py): KLD and ΔPPL by position, retrieval at depth
    long_ctx: int = opt(8192, "longest long-context window in tokens, capped at the model's context; windows of 1/8, "
                              "1/4, 1/2 and all of it (0: no long-context measurement)")
    long_windows: int = opt(1, "long windows per length")
    needles: int = opt(5, "facts planted in each long window, at depths spread over 10 to 90 percent of the text")
    long_seed: int = opt(0, "seed of the long windows' text and facts")
    # instruction following: IFBench's published prompts judged by its checkers (harness/if_reference.py), or the
    # home-made set (harness/instructions.py). 64 x 96: 100 x 128 took ~7 minutes on three cells of the default
    # model (2 cores)
    instructions: int = opt(64, "instruction-following prompts, each with one or more verifiable instructions; "
                                 "more than the set holds takes them all (0: none)")
    instruct_set: str = opt("ifbench", "ifbench: IFBench's published test prompts, judged by its own checkers "
                            "(if-verifiable); home: 40 hand-written tasks with IFEval-style instructions, judged by "
                            "this harness's checks (not validated against IFEval's)", choices=("ifbench", "home"))
    instruct_tokens: int = opt(96, "greedy tokens per instruction-following prompt")
    instruct_seed: int = opt(0, "seed of the instruction-following prompts' tasks and instructions")

    def __post_init__(self) -> None:
        if self.windows == 0:
            object.__setattr__(self, "windows", None)
        object.__setattr__(self, "decode_batches", tuple(sorted({1, *self.decode_batches})))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TaskSettings:
    """lm-eval tasks: the same documents, few-shot count and limit for every cell"""

    tasks: tuple[str, ...] = opt(("lambada_openai", "piqa"), "lm-eval tasks, comma-separated "
                                 "(`quantcompare list tasks`); none to skip")
    # 300 before: 2/3 of the task time; accuracy CI ±6.6 instead of ±5.4 points at 50%
    limit: int | None = opt(200, "examples per task (0: all)")
    num_fewshot: int = opt(0, "few-shot examples per request")
    seed: int = opt(1234, "lm-eval's seed (few-shot sampling)", flag="--task-seed")
    requests: Path | None = opt(None, flag="--task-requests", help="the tasks' tokenized requests, exported where lm-eval is installed "
                                "(evaluators/lm_eval_tasks.export_requests): a host without lm-eval runs them, unscored")

    def __post_init__(self) -> None:
        if tuple(t.lower() for t in self.tasks) in (("none",), ("",)):
            object.__setattr__(self, "tasks", ())
        if self.limit == 0:
            object.__setattr__(self, "limit", None)

    def as_dict(self) -> dict:
        return {"tasks": list(self.tasks), "limit": self.limit, "num_fewshot": self.num_fewshot, "seed": self.seed}


AWQ_BACKENDS = ("autoawq", "llmcompressor")


@dataclass(frozen=True)
class AwqRecipe:
    """AWQ INT4: AutoAWQ's recipe (w_bit 4, group 128, zero point, GEMM); the group size falls back when
    layers' widths need it. The calibration sample counts are also llama-imatrix's"""

    w_bit: int = opt(4, cli=False)
    q_group_size: int = opt(128, cli=False)
    zero_point: bool = opt(True, cli=False)
    version: str = opt("GEMM", cli=False)
    backend: str = opt("autoawq", "the AWQ tool", choices=AWQ_BACKENDS, flag="--awq-backend")
    calib_samples: int = opt(64, "calibration samples (AWQ and llama-imatrix chunks)", flag="--awq-calib-samples")
    calib_seq_len: int = opt(256, "tokens per calibration sample", flag="--awq-calib-seq-len")
    device: str = opt("cpu", cli=False)  # where the tool calibrates: the run's --device

    def as_dict(self) -> dict:
        return asdict(self)
