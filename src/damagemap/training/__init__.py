"""damagemap.training"""
