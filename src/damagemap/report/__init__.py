"""damagemap.report"""
