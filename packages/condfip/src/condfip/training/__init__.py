"""Training of the Cond-FiP stages (encoder, then decoder) and of the graph network, in one process or with
torch.distributed. Needs the ``condfip[train]`` extra (scm-gen makes the training data).

>>> from condfip.training.loop import train
>>> from condfip.training.options import EncoderOptions, TrainingOptions
>>> train(TrainingOptions(EncoderOptions(CondFiPConfig.named("small")), out=Path("runs/enc"), steps=1000))
"""
