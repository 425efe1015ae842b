;; Imports `wasi:filesystem/preopens@0.2.6` and nothing else.
(component
  (import "wasi:filesystem/preopens@0.2.6" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
