"""Metadata about what the trust holds (the manual's annex on metadata): descriptive
(:mod:`trust.metadata.submission`, a source's submission as a DDI-Codebook), structural
(:mod:`trust.metadata.structure`, the case record's fields and code lists) and administrative
(:mod:`trust.metadata.administrative`, the agreements in force)."""
