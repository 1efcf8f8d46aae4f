"""Data: an offline captioned corpus of openly licensed emoji, icons and clip art, evaluation suites with
distribution shifts (held-out art styles, real Fashion-MNIST photos), and loaders for bring-your-own data."""
