"""tfmcourse: reference code, data, checks and tools for the Transformer course.

One module per concept, in lesson order:

=================  ===========================================================
``seq2seq``        lessons 01-02: GRU encoder-decoder, Bahdanau attention
``norms``          lesson 03: batch norm and layer norm
``residual``       lesson 04: residual sub-layers, post-LN and pre-LN
``positional``     lesson 05: sinusoidal positional encoding
``masks``          lesson 06: causal and padding masks (True = blocked)
``attention``      lessons 06-07: scaled dot-product and multi-head attention
``transformer``    lesson 08: encoder/decoder layers and the full model
``torch_interop``  lesson 08: weights to and from the ``torch.nn`` twins
``decoding``       lesson 09: greedy and beam search
``schedule``       lesson 09: the Noam warm-up schedule
``data``           synthetic, offline data sets
``train``          the shared training loop
``experiments``    the lessons' toy stacks, probes and runners (one module per lesson)
``viz``            plots
``widgets``        ipywidgets explorers
``checks``         exercise checks (``check_<name>``) and the ``EXERCISES`` registry
``grading``        ``tfmcourse grade``
``export``         ``tfmcourse export``: Gradescope, PrairieLearn; LMS gradebooks
``build``          ``tfmcourse build``: exercises/ from solutions/
=================  ===========================================================

Importing the package has no side effects: no prints, no RNG or device changes.
"""

__version__ = "0.1.0"
