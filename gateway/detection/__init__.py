"""The layered prompt-injection detector (issue 3).

Layers, each exposed to the pipeline as its own registered check (see :mod:`gateway.checks`):

1. :mod:`.normalise` and :mod:`.decoders` turn one text into *views*: the original, a canonical
   form (NFKC, confusables folded, invisible/bidi/tag characters removed) and decoded forms
   (base64, hex, URL, ROT13, leetspeak, tag-character smuggling; nested). Every later layer sees
   every view (:mod:`.views`). Smuggled characters are themselves a signal.
2. :mod:`.signatures`: curated, versioned rules from ``gateway/detection/data/signatures.yaml``.
3. :mod:`.lexical`: TF-IDF and a logistic regression over every run of words of every view;
   :mod:`.semantic`: MiniLM embeddings, a logistic-regression head and nearest-neighbour
   similarity to known attacks; :mod:`.screen`: which texts the default policy asks MiniLM
   about (the lexical head's gray zone) and the head that judges them there (all trained by
   :mod:`.train`).
4. :mod:`.gibberish`: a character-trigram model that flags optimised (GCG-style) suffixes.

:mod:`.scope` decides which segments a layer reads and with which threshold.
"""
