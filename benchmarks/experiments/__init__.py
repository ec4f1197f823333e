"""Research experiments on the mini Wan: World-R1 in miniature and its variants, the warps, re-injection."""
