bshw_periphery.v
bshw_system.v
bshw_crossbar_model.v
