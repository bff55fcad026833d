"""Layer 2, data: ``bddoia`` (the official-layout reader and torch dataset), ``check_data`` (a copy on disk
checked and reported), ``fiftyone`` (the public FiftyOne copy converted into the official layout), ``scene`` (scene graph, rule table, descriptions), ``render`` (a scene's frames),
``synthetic`` (the BDD-OIA-format writer), ``toy_split`` (the proposal's split, as datasets).
"""
