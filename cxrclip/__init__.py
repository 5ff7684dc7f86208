"""cxrclip"""
