;; Imports `convergio:platform/admin@0.1.0` and nothing else.
(component
  (import "convergio:platform/admin@0.1.0" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
