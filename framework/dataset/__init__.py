"""Dataset: synthetic question/answer sets from indexed chunks, versioned on disk.

`pipeline.synthesize` runs generators -> PII scrubbing -> filters -> split -> formatting ->
a new version folder with its card (`card.DatasetCard`).
"""
