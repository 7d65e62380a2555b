"""The lessons' experiments, apart from the reference implementations they run.

Toy stacks, probes and training runners: what a lesson's notebook calls to turn
a claim into a measurement. One module per lesson that needs more than a cell:

=============  ==================================================================
``lesson01``   train seq2seq models on reversal, accuracy by length (lessons 01-02)
``lesson03``   batch norm vs layer norm: causal-leak, padding and batch probes
``lesson04``   deep stacks with and without residuals, gradient norms, position probe
``lesson09``   a table-driven stand-in model for greedy and beam search
=============  ==================================================================
"""
