"""From stored runs to answers: statistics, summaries, comparisons, costs and the verdict, power."""
