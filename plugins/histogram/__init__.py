PLUGIN = None
