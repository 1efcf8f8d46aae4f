"""clip-repro: a small-scale, from-scratch reproduction of CLIP (Radford et al., 2021).

The seeds' API mirrors OpenAI's `clip` package::

    model, preprocess = repro.load("ViT-B/32")            # or a .safetensors checkpoint
    text = repro.tokenize(["a diagram", "a dog", "a cat"])
    logits_per_image, logits_per_text = model(preprocess(image).unsqueeze(0), text)
"""

from .loading import available_models, load, save
from .tokenizer import Tokenizer, tokenize

__version__ = "0.1.0"
__all__ = ["Tokenizer", "available_models", "load", "save", "tokenize", "__version__"]
