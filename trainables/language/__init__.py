"""Languages: scripts of Unicode text, the forget language's vocabulary, language ID and mmie.py's LID voters."""
