"""Layer 3, text formats: ``formats`` (the plain target and its parser), ``json_output`` (the JSON schema,
JSON targets, parser and structure score).
"""
