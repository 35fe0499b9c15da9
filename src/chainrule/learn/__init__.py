"""For learners: step-by-step explanations of the chain rule, the book's data sets, and pictures
of training."""
