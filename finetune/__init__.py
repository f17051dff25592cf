"""LoRA fine-tunes of small open models on a task's train.jsonl (transformers + peft).

`evals finetune TASK` trains with the prompt the task uses at evaluation time and writes the
adapter to finetune/adapters/<name>/, usable as `local:MODEL+lora:finetune/adapters/<name>`.
Modules: config (settings), data (chats, decontamination, batches, export), loss (shared-prefix
answer-token loss), trainer (loop, validation, early stopping), checkpoint, manifest, progress, cli.
"""
