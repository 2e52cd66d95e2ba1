"""damagemap.heads"""
