"""damagemap.mapping"""
