bshw_periphery.v
bshw_host.v
bshw_host_system.v
bshw_crossbar_model.v
