"""task.yaml and golden sets in: tasks, golden examples, prompts, YAML with line numbers, importers."""
