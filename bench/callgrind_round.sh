#!/bin/bash
# bench/callgrind_round.sh BUILD LABEL CREDIT TASKS
#
# Instructions (callgrind, every thread) of a zfed-broker and of one
# zfed-worker (--credit CREDIT --threads 0) over one zfed-controller round
# of TASKS fib tasks, after a warm-up round of 2000: the counters are zeroed
# between the two rounds and dumped after the second (callgrind_control), so
# start-up is not counted.  Prints Ir and Ir per task of each process.
# Output folder: $CG_DIR/LABEL (default /tmp/zfed-cg/LABEL).
# CG_CONTROLLER=1 also runs the measured round's zfed-controller under
# callgrind: the whole process, its start-up and mmi.status probe included
# (a few million instructions, the same before and after a change).
# CG_BATCH=N runs both rounds with --batch N.
set -u
B=$1; L=$2; C=$3; N=$4
D=${CG_DIR:-/tmp/zfed-cg}/$L; rm -rf $D; mkdir -p $D; cd $D
valgrind --tool=callgrind --callgrind-out-file=$D/cg.broker.%p $B/zfed-broker -q \
    --bind 'tcp://127.0.0.1:*' --endpoint-file ep 2> broker.log &
BP=$!
for i in $(seq 100); do [ -s ep ] && break; sleep 0.2; done
EP=$(head -1 ep)
valgrind --tool=callgrind --callgrind-out-file=$D/cg.worker.%p $B/zfed-worker -q --connect $EP \
    --credit $C --threads 0 2> worker.log &
WP=$!
sleep 4
$B/zfed-controller --connect $EP --workdir wd0 --job-id warm --rounds 1 --tasks 2000 -q --no-progress --round-timeout 600 --batch ${CG_BATCH:-1}
callgrind_control -z $BP >/dev/null; callgrind_control -z $WP > /dev/null
CTL=""; [ "${CG_CONTROLLER:-0}" = 1 ] && CTL="valgrind --tool=callgrind --callgrind-out-file=$D/cg.controller.%p"
$CTL $B/zfed-controller --connect $EP --workdir wd1 --job-id meas --rounds 1 --tasks $N -q --no-progress --round-timeout 600 --batch ${CG_BATCH:-1} 2> controller.log
callgrind_control -d $BP >/dev/null; callgrind_control -d $WP > /dev/null
kill -INT $WP; sleep 1; kill -INT $BP; wait
for f in $D/cg.broker.$BP.1 $D/cg.worker.$WP.1 $(ls $D/cg.controller.* 2>/dev/null); do
  ir=$(grep -E '^(summary|totals):' $f | head -1 | awk '{print $2}')
  echo "$L $(basename $f | cut -d. -f2) Ir=$ir per_task=$((ir / N))"
done
