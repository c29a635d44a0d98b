module oxflow.dev/bench/k8s/watchers

go 1.22
