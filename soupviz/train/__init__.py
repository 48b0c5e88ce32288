"""Training soup ingredients: the run's recipe (`config`), the loss each adversarial-training
method contributes per batch (`losses`), and the training and fine-tuning loop (`loop`).
"""
