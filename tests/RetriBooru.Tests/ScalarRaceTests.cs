using RetriBooru.Runtime;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>TorchSharp 0.107's implicit-Scalar finalisation race is kept out of the hot paths (see <see cref="ScalarOps"/>).</summary>
public class ScalarRaceTests
{
    /// <summary>
    /// The library, the CLI and the notebook extension: the hot paths (training step, optimiser, EMA, samplers, schedule math, every model's forward
    /// pass) and what a long study runs besides them (image conversion, CLIP metrics, the attribute probe).
    /// </summary>
    [Fact]
    public void No_implicit_scalar_reaches_a_native_call_anywhere_in_the_workbench()
    {
        var assemblies = new[] { typeof(ScalarOps).Assembly, typeof(RetriBooru.Cli.CliApp).Assembly, typeof(RetriBooru.Interactive.NotebookSession).Assembly };
        var findings = ImplicitScalarScanner.Find(assemblies.SelectMany(a => a.GetTypes()).Where(t => t.DeclaringType is null));
        Assert.True(findings.Count == 0, $"{findings.Count} calls make an implicit Scalar; use ScalarOps (or an explicit Scalar disposed after the call):\n{string.Join("\n", findings.Distinct())}");
    }

    [Fact]
    public void A_parameter_view_keeps_its_narrowed_intermediate_alive_in_its_own_scope()
    {
        // The soak's segfault (THSTensor_view inside a checkpoint save): flat.narrow(...).view(...) outside a dispose scope left the
        // narrowed tensor unreferenced while view() ran, so a finaliser could free it first. View() now makes it in its own scope
        // (released when view() has returned) and hands out only the view: the caller's scope gains one tensor, not two.
        Torch.Load();
        using var a = new TorchSharp.Modules.Parameter(TorchSharp.torch.ones(2, 3));
        using var b = new TorchSharp.Modules.Parameter(TorchSharp.torch.zeros(4));
        using var buffer = new RetriBooru.Diffusion.ParameterBuffer([new("a", a), new("b", b)]);
        using var scope = TorchSharp.torch.NewDisposeScope();
        long before = scope.DisposablesCount;
        var view = buffer.View(buffer.Values, 0);
        Assert.Equal(before + 1, scope.DisposablesCount);
        Assert.Equal([2L, 3L], view.shape);
        Assert.Equal(6f, view.sum().item<float>());
        // The optimizer's state (what a checkpoint writes) is made the same way.
        using var optimizer = new RetriBooru.Diffusion.AdamW(buffer);
        long beforeState = scope.DisposablesCount;
        var state = optimizer.State().ToList();
        Assert.Equal(beforeState + state.Count, scope.DisposablesCount);
    }

    [Fact]
    public void The_scanner_finds_the_implicit_scalars_it_is_meant_to_find()
    {
        // The sample's own IL: x * 0.5 (a TorchSharp operator that makes a Scalar inside), a + b (alpha 1), square() (exponent 2).
        var findings = ImplicitScalarScanner.Find([typeof(ImplicitScalarSamples)]);
        Assert.Contains(findings, f => f.Contains("Scaled -> Tensor.op_Multiply(Tensor, Double)"));
        Assert.Contains(findings, f => f.Contains("Summed -> Tensor.op_Addition(Tensor, Tensor)"));
        Assert.Contains(findings, f => f.Contains("Squared -> Tensor.square()"));
        Assert.Contains(findings, f => f.Contains("Explicit -> Scalar.op_Implicit(Double)"));
        // TorchSharp's Adam makes its Scalars in a lambda inside its step override (the attribute probe's crash in c10::Scalar::toFloat).
        Assert.Contains(findings, f => f.Contains("OptimiserStep -> Optimizer.step(Func`1)"));
        Assert.DoesNotContain(findings, f => f.Contains(".Safe ->"));
    }
}

static class ImplicitScalarSamples
{
    public static TorchSharp.torch.Tensor Scaled(TorchSharp.torch.Tensor x) => x * 0.5;
    public static TorchSharp.torch.Tensor Summed(TorchSharp.torch.Tensor a, TorchSharp.torch.Tensor b) => a + b;
    public static TorchSharp.torch.Tensor Squared(TorchSharp.torch.Tensor x) => x.square();
    public static TorchSharp.torch.Tensor Explicit(TorchSharp.torch.Tensor x) => x.mul(2.0);
    public static TorchSharp.torch.Tensor OptimiserStep(TorchSharp.torch.optim.Optimizer optimizer) => optimizer.step();
    public static TorchSharp.torch.Tensor Safe(TorchSharp.torch.Tensor x) => x.Times(0.5).Plus(x).Squared();
}

/// <summary>The soak benchmark's short form: a child process (so its collection storm cannot disturb other tests) under a tiny gen-0 budget.</summary>
public class SoakTests
{
    [Fact]
    public void A_short_soak_under_constant_garbage_collections_has_no_failures()
    {
        var cli = Path.Combine(Path.GetDirectoryName(typeof(RetriBooru.Cli.CliApp).Assembly.Location)!, "RetriBooru.Cli.dll");
        var (code, output) = NotebookRunner.Run("dotnet", [cli, "model", "soak", "--steps", "40", "--samples", "8", "--sample-steps", "4"], Path.GetTempPath(),
            TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["DOTNET_GCgen0size"] = "0x10000", ["RETRIBOORU_THREADS"] = "1" });
        // Before the fix the same run failed in its first training segment and then died with a segmentation fault (exit 139).
        Assert.True(code == 0, $"soak exit {code}:\n{output}");
        Assert.Matches(@"soak finished: 40 training steps, 8 samples, 0 failures, [\d,]+ gen-0", output.Replace("\n", ""));
    }
}
