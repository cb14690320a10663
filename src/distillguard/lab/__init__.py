"""The distillation lab: a teacher model, its server, a harvest through the gateway, students, evaluation.

Needs the ``lab`` extra (torch, transformers, tokenizers, fastapi, openai); the
CLI imports these modules only in the lab's own commands.
"""
