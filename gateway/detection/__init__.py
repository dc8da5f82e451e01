"""The layered prompt-injection detector (issue 3).

Layers, each exposed to the pipeline as its own registered check (see :mod:`gateway.checks`):

1. :mod:`.normalise` and :mod:`.decoders` turn one text into *views*: the original, a canonical
   form (NFKC, confusables folded, invisible/bidi/tag characters removed) and decoded forms
   (base64, hex, URL, ROT13, leetspeak, tag-character smuggling; nested). Every later layer sees
   every view (:mod:`.views`). Smuggled characters are themselves a signal.
2. :mod:`.signatures`: curated, versioned rules from ``gateway/detection/data/signatures.yaml``.
3. :mod:`.semantic`: MiniLM embeddings, a logistic-regression head and nearest-neighbour
   similarity to known attacks (trained by :mod:`.train`).
4. :mod:`.gibberish`: a character-trigram model that flags optimised (GCG-style) suffixes.

:mod:`.scope` decides which segments a layer reads and with which threshold.
"""
