"""What the models show and how a soup adapts: saliency maps and generated images, soup-weight
search and few-shot adaptation to a shift (the science; what the pages make of it is in `serve`).
"""
