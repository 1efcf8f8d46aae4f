"""Evaluation protocols of CLIP (Radford et al., 2021): zero-shot classification with prompt ensembling (§3.1),
zero-shot retrieval (§3.1, Table 13), linear and few-shot probes on frozen features (§3.2, appendix A.3) and
effective robustness under distribution shift (§3.3)."""

from .features import encode_images, encode_texts, normalize
from .metrics import mean_per_class_recall, topk_accuracy
from .probe import few_shot, linear_probe, sample_shots, search_C
from .retrieval import image_to_text, retrieval_eval, semantic_search
from .robustness import effective_robustness, logit, relative_robustness_gap_reduction
from .runner import SplitCache, load_suites, run_suites
from .zeroshot import CLASSNAME_ONLY, class_labels, template_features, zeroshot_classifier, zeroshot_eval

__all__ = [
    "encode_images", "encode_texts", "normalize",
    "mean_per_class_recall", "topk_accuracy",
    "few_shot", "linear_probe", "sample_shots", "search_C",
    "image_to_text", "retrieval_eval", "semantic_search",
    "effective_robustness", "logit", "relative_robustness_gap_reduction",
    "SplitCache", "load_suites", "run_suites",
    "CLASSNAME_ONLY", "class_labels", "template_features", "zeroshot_classifier", "zeroshot_eval",
]
