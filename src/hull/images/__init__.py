"""The image store: imagedb, layerdb (chain ids), repositories.json, distribution metadata.

Owns image and layer metadata; stores layer contents only through a graph driver (storage/).
"""
