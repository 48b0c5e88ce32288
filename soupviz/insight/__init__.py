"""What the models show and how a soup adapts: saliency maps and generated images, soup-weight
search and few-shot adaptation to a shift, and the insight pages' Streamlit-free logic (`runs`).
Its modules sit in different layers (see the README's architecture section).
"""
