"""Method 1: text-derived knowledge distilled into an action-anticipation student.

A BERT-family LM, domain-pretrained with masked LM on recipe text (`tasks/mlm.py`), is fine-tuned to
predict the next action from the text of the previous ones (`teacher.py`, `text_classifier.py`) and
distilled by KL with temperature into an Anticipative Video Transformer (`task.py`, `avt.py`); the teacher
is reported beside the prior and bigram predictors it must beat (`references.py`).
"""
