# bench/plot.gp: records/s against concurrency, one line per client (called by bench/run.py).
#   gnuplot -e "datafile='plot.dat'; blocks=6; outfile='results.png'; plottitle='...'" bench/plot.gp
# datafile: one block per client (separated by two blank lines), its title on the first line,
# then "concurrency median min max" rows; the error bars show the runs' min and max.
set terminal pngcairo size 1000,620 font "DejaVu Sans,10" noenhanced
set output outfile
set title plottitle
set logscale x 2
set xrange [0.8:80]
set xtics (1, 4, 16, 64)
set xlabel "requests in flight (connections)"
set ylabel "records/s (median of the runs; bars: min-max)"
# Logarithmic: wrk at 16 connections is ten times the slowest client.
set logscale y
set ytics (200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000)
set format y "%.0f"
set grid xtics ytics
set key top left box opaque
set datafile separator whitespace
# Colours that stay readable on white, one per client, in the order of the data blocks.
set linetype 1 linecolor rgb "#6a1b9a" pointtype 1
set linetype 2 linecolor rgb "#00897b" pointtype 2
set linetype 3 linecolor rgb "#1565c0" pointtype 7
set linetype 4 linecolor rgb "#ef6c00" pointtype 5
set linetype 5 linecolor rgb "#c62828" pointtype 9
set linetype 6 linecolor rgb "#37474f" pointtype 13
plot for [i=0:blocks-1] datafile index i using 1:2:3:4 with yerrorlines \
     pointsize 1.2 linewidth 2 title columnheader(1)
