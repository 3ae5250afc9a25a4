"""Group joins: robot groups greet their newcomers in batches, customer groups' WeCom welcome
template follows the cohort's script, member lists are re-read after a lost callback."""
