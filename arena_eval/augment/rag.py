"""Retrieval for `augment: rag`: a corpus split into passages, BM25 by default, embeddings optionally.

The index for a corpus is built once per process and shared by every contestant that uses it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import RagConfig
from ..errors import ConfigError
from ..questions import utf8_lines

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Words too common to say anything about relevance; BM25's idf already damps them, this keeps indexes small.
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have how i in is it its of on or that the this to was what when where "
    "which who why will with you your".split()
)


@dataclass(frozen=True)
class Passage:
    id: str
    text: str


def tokenize(text: str) -> list[str]:
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOPWORDS]


def chunk_text(text: str, chunk_chars: int, overlap: int) -> list[str]:
    """Pack paragraphs into chunks of at most `chunk_chars`; a longer paragraph is cut with `overlap`."""
    chunks: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        if len(paragraph) > chunk_chars:
            if current:
                chunks.append(current)
                current = ""
            step = chunk_chars - overlap
            chunks.extend(paragraph[i : i + chunk_chars] for i in range(0, len(paragraph) - overlap, step))
        elif len(current) + len(paragraph) + 2 <= chunk_chars:
            current = f"{current}\n\n{paragraph}" if current else paragraph
        else:
            chunks.append(current)
            current = paragraph
    if current:
        chunks.append(current)
    return chunks


def load_corpus(path: Path, chunk_chars: int = 800, overlap: int = 100) -> list[Passage]:
    if not path.exists():
        raise ConfigError(f"rag.corpus: {path} not found; point it at a folder of .txt/.md files or a .jsonl of passages")
    passages: list[Passage] = []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", ".md") and p.is_file())
        for file in files:
            name = file.relative_to(path).as_posix()
            for i, chunk in enumerate(chunk_text(file.read_text(encoding="utf-8", errors="replace"), chunk_chars, overlap)):
                passages.append(Passage(f"{name}#{i}", chunk))
    elif path.suffix.lower() == ".jsonl":
        for number, line in utf8_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pid, text = str(record.get("id", number)), record["text"]
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise ConfigError(f"{path}:{number}: a passage must be a JSON object with a `text` (and an `id`)") from None
            pieces = chunk_text(text, chunk_chars, overlap)
            passages += [Passage(pid if len(pieces) == 1 else f"{pid}#{i}", p) for i, p in enumerate(pieces)]
    else:
        raise ConfigError(f"rag.corpus: {path} is neither a folder nor a .jsonl file")
    if not passages:
        raise ConfigError(f"rag.corpus: {path} holds no text (.txt/.md files or JSONL passages)")
    return passages


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[tuple[Passage, float]]: ...


class BM25Index:
    """Okapi BM25 over the passages (k1 = 1.5, b = 0.75)."""

    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75):
        self.passages = passages
        self.k1, self.b = k1, b
        self.doc_terms = [Counter(tokenize(p.text)) for p in passages]
        self.lengths = np.array([sum(t.values()) for t in self.doc_terms], dtype=float)
        self.avg_length = float(self.lengths.mean()) or 1.0
        document_frequency: Counter = Counter()
        for terms in self.doc_terms:
            document_frequency.update(terms.keys())
        n = len(passages)
        self.idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in document_frequency.items()}
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, terms in enumerate(self.doc_terms):
            for term, count in terms.items():
                self.postings.setdefault(term, []).append((i, count))

    def search(self, query: str, k: int) -> list[tuple[Passage, float]]:
        scores = np.zeros(len(self.passages))
        for term in set(tokenize(query)):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for i, tf in self.postings[term]:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg_length)
                scores[i] += idf * tf * (self.k1 + 1) / (tf + norm)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(self.passages[i], float(scores[i])) for i in best if scores[i] > 0]


class EmbeddingIndex:
    """Cosine similarity over sentence-transformers embeddings (optional dependency)."""

    def __init__(self, passages: list[Passage], model: str):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(
                "rag.retriever: embedding needs sentence-transformers: pip install 'arena-eval[embeddings]'"
            ) from None
        self.passages = passages
        self.model = SentenceTransformer(_embedding_model_path(model), device="cpu")
        self.vectors = self.model.encode([p.text for p in passages], normalize_embeddings=True, convert_to_numpy=True)

    def search(self, query: str, k: int) -> list[tuple[Passage, float]]:
        q = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        scores = self.vectors @ q
        best = np.argsort(-scores, kind="stable")[:k]
        return [(self.passages[i], float(scores[i])) for i in best]


def _embedding_model_path(model: str) -> str:
    if not model.startswith("package:"):
        return model
    import importlib.util

    name = model.split(":", 1)[1]
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"rag.embedding_model: package {name!r} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    # The model folder is the one holding a sentence-transformers config.
    configs = sorted(folder.rglob("config_sentence_transformers.json")) or sorted(folder.rglob("config.json"))
    if not configs:
        raise ConfigError(f"rag.embedding_model: package {name!r} holds no model folder")
    return str(configs[0].parent)


_INDEXES: dict[str, Retriever] = {}


def corpus_fingerprint(config: RagConfig, path: Path) -> str:
    """Changes when the corpus files or the chunking/retriever settings change."""
    h = hashlib.sha256(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode())
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for file in files:
        if file.is_file():
            stat = file.stat()
            h.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def get_retriever(config: RagConfig, base_dir: str | Path = ".") -> Retriever:
    path = Path(config.corpus).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    key = corpus_fingerprint(config, path) if path.exists() else str(path)
    if key not in _INDEXES:
        passages = load_corpus(path, config.chunk_chars, config.chunk_overlap)
        if config.retriever == "embedding":
            _INDEXES[key] = EmbeddingIndex(passages, config.embedding_model or "")
        else:
            _INDEXES[key] = BM25Index(passages)
    return _INDEXES[key]
