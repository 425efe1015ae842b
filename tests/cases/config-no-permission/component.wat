;; Imports `wasi:config/store@0.2.0-rc.1` and nothing else.
(component
  (import "wasi:config/store@0.2.0-rc.1" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
