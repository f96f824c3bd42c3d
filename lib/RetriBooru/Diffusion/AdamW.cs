using RetriBooru.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>
/// AdamW (decoupled weight decay, Loshchilov and Hutter), written out so its whole state (step count, first
/// and second moments per named parameter) is plain tensors that checkpoint to safetensors and restore bit-exactly.
/// Same update as torch.optim.AdamW: p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
/// p -= lr/(1-b1^k) m / (sqrt(v)/sqrt(1-b2^k) + eps). Runs on a <see cref="ParameterBuffer"/>: one update per
/// learning-rate group over the flat values, gradients and moments.
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly ParameterBuffer buffer;
    readonly Tensor expAvg;
    readonly Tensor expAvgSq;

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 1e-2;
    public long StepCount { get; private set; }

    public AdamW(ParameterBuffer buffer)
    {
        this.buffer = buffer;
        expAvg = zeros_like(buffer.Values).DetachFromDisposeScope();
        expAvgSq = zeros_like(buffer.Values).DetachFromDisposeScope();
    }

    public void Step(double learningRate)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount), bc2 = 1 - Math.Pow(Beta2, StepCount);
        using var noGrad = no_grad();
        foreach (var group in buffer.Groups)
        {
            using var scope = NewDisposeScope();
            double lr = learningRate * group.LearningRateScale;
            var p = buffer.Values.narrow(0, group.Offset, group.Length);
            var g = buffer.Gradients.narrow(0, group.Offset, group.Length);
            var m = expAvg.narrow(0, group.Offset, group.Length);
            var v = expAvgSq.narrow(0, group.Offset, group.Length);
            p.ScaleInPlace(1 - lr * WeightDecay);
            m.ScaleInPlace(Beta1).AddScaledInPlace(g, 1 - Beta1);
            v.ScaleInPlace(Beta2).AddProductInPlace(g, g, 1 - Beta2);
            var denom = v.sqrt().Over(Math.Sqrt(bc2)).PlusInPlace(Eps);
            p.AddQuotientInPlace(m, denom, -lr / bc1);
        }
    }

    /// <summary>State as named tensors: <c>exp_avg.NAME</c>, <c>exp_avg_sq.NAME</c> (views of the flat moments), and <c>step</c>.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State()
    {
        yield return new("step", tensor(new[] { StepCount }));
        for (int i = 0; i < buffer.Parameters.Count; i++) yield return new("exp_avg." + buffer.Parameters[i].Key, buffer.View(expAvg, i));
        for (int i = 0; i < buffer.Parameters.Count; i++) yield return new("exp_avg_sq." + buffer.Parameters[i].Key, buffer.View(expAvgSq, i));
    }

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        if (!state.TryGetValue("step", out var step)) throw new InvalidDataException($"{source}: optimizer state has no 'step'");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (prefix, flat) in new[] { ("exp_avg.", expAvg), ("exp_avg_sq.", expAvgSq) })
            for (int i = 0; i < buffer.Parameters.Count; i++)
            {
                var name = prefix + buffer.Parameters[i].Key;
                var target = buffer.View(flat, i);
                if (!state.TryGetValue(name, out var saved)) throw new InvalidDataException($"{source}: optimizer state lacks '{name}'");
                if (!saved.shape.SequenceEqual(target.shape)) throw new InvalidDataException($"{source}: optimizer state '{name}' has shape [{string.Join(", ", saved.shape)}], expected [{string.Join(", ", target.shape)}]");
                target.copy_(saved);
            }
        StepCount = step.item<long>();
    }

    public void Dispose()
    {
        expAvg.Dispose();
        expAvgSq.Dispose();
    }
}

/// <summary>Exponential moving average of a <see cref="ParameterBuffer"/>'s values: shadow = decay shadow + (1 - decay) param.</summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    readonly ParameterBuffer buffer;
    readonly Tensor shadow;
    readonly Dictionary<string, Tensor> named = new(StringComparer.Ordinal);

    public double Decay { get; }

    public ExponentialMovingAverage(ParameterBuffer buffer, double decay)
    {
        if (decay is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be in (0, 1)");
        this.buffer = buffer;
        Decay = decay;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope(); // holds the detached view until clone has returned
        shadow = buffer.Values.detach().clone().DetachFromDisposeScope();
        for (int i = 0; i < buffer.Parameters.Count; i++) named[buffer.Parameters[i].Key] = buffer.View(shadow, i).DetachFromDisposeScope();
    }

    /// <summary>
    /// The decay used after training step <paramref name="step"/> (0-based): min(decay, (1 + step) / (10 + step)).
    /// The warm-up keeps the average from holding on to the initial weights: without it, 0.999 over a 2000-step run
    /// leaves 0.999^2000 = 13.5% of the random initialisation in the exported model.
    /// </summary>
    public static double EffectiveDecay(double decay, long step) => Math.Min(decay, (1.0 + step) / (10.0 + step));

    public void Update(long step)
    {
        double decay = EffectiveDecay(Decay, step);
        using var noGrad = no_grad();
        shadow.ScaleInPlace(decay).AddScaledInPlace(buffer.Values, 1 - decay);
    }

    /// <summary>The averaged weights by parameter name (views of the flat shadow).</summary>
    public IReadOnlyDictionary<string, Tensor> Shadow => named;

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        using var noGrad = no_grad();
        foreach (var (name, t) in named)
        {
            if (!state.TryGetValue(name, out var saved)) throw new InvalidDataException($"{source}: EMA state lacks '{name}'");
            if (!saved.shape.SequenceEqual(t.shape)) throw new InvalidDataException($"{source}: EMA state '{name}' has shape [{string.Join(", ", saved.shape)}], expected [{string.Join(", ", t.shape)}]");
            t.copy_(saved);
        }
    }

    /// <summary>Copies the averaged weights into the live parameters (for export).</summary>
    public void CopyTo()
    {
        using var noGrad = no_grad();
        buffer.Values.copy_(shadow);
    }

    public void Dispose()
    {
        foreach (var t in named.Values) t.Dispose();
        shadow.Dispose();
    }
}
