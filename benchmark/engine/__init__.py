"""The grid engine: a grid's configuration and cells (`config`, `cells`), the one cell recipe (`recipe`), the
plan and the driver's log (`plan`, `log`), and the executors that run the same tasks: here or in a process pool
(`local`), on Ray (`ray_executor`); `grid.run_grid` ties them together."""
