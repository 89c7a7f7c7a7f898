module github.com/loyalty-connector/engine

go 1.26

require (
	github.com/expr-lang/expr v1.17.8
	github.com/osteele/liquid v1.6.0
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	go.etcd.io/bbolt v1.5.0
	golang.org/x/text v0.14.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/osteele/tuesday v1.0.3 // indirect
	golang.org/x/sys v0.45.0 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)
