"""Synthetic, offline, seeded data sets (nothing is downloaded).

``sequences``: variable-length symbol tasks for lessons 01-02;
``dates``: dates written in Korean and English formats → ISO, for lesson 09.
"""
