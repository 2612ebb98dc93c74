"""zoobench's model zoo: what can be built, loaded and trained."""

from zoo.protocols import Encoder, Ranker, Retriever, SparseEncoder, Tagger
from zoo.registry import ModelCard, create_model, get_card, list_models, register_model

__all__ = [
    "create_model",
    "list_models",
    "get_card",
    "register_model",
    "ModelCard",
    "Encoder",
    "SparseEncoder",
    "Retriever",
    "Ranker",
    "Tagger",
]
