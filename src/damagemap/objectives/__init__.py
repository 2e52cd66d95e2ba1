"""damagemap.objectives"""
