# Sourced by the bench scripts: sets $model to the model directory named by $target — an existing
# directory, or a synthetic preset of `smdlm bench` (mdlm-small, train-small, ...) written
# once under bench/out/ — after building smdlm.
out=bench/out
mkdir -p "$out"
make -s build/smdlm
if [ -d "$target" ]; then
    model=$target
else
    model=$out/$target
    [ -f "$model/model.safetensors" ] ||
        ./build/smdlm bench forward --shape "$target" --len 8 --iters 1 --warmup 0 --save-model "$model" >/dev/null
fi
