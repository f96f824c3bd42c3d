using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetriBooru.Modeling;

/// <summary>
/// Floating-point operations of one forward pass, split by whether the layer trains. <see cref="TrainingStep"/> is the
/// usual estimate of a training step: a trained layer's backward costs about two forwards (input and weight gradients);
/// frozen layers count their forward only (the input gradients some of them pass back are left out).
/// </summary>
public sealed record FlopCount(double TrainableForward, double FrozenForward, int Convolutions, int Linears, int Attentions)
{
    public double Forward => TrainableForward + FrozenForward;
    public double TrainingStep => 3 * TrainableForward + FrozenForward;
}

/// <summary>
/// Counts FLOPs from the module graph by running a forward pass with hooks on every <see cref="Conv2d"/> and
/// <see cref="Linear"/> reached: 2 x output elements x multiply-adds per output element (C_in/groups x kh x kw for a
/// convolution, in_features for a linear). Attention matmuls are not modules; each attention's QK^T and AV products
/// (4 x B x N x M x C) are counted from the shapes its query and key projections return (to_q / to_k, or q_proj /
/// k_proj, paired call by call). Normalisations, activations and additions are left out (a few percent at most).
/// </summary>
public static class FlopCounter
{
    static readonly (string Query, string Key)[] AttentionProjections = [("to_q", "to_k"), ("q_proj", "k_proj")];

    public static FlopCount Count(IEnumerable<nn.Module> roots, Action forward)
    {
        double trainable = 0, frozen = 0;
        int convolutions = 0, linears = 0;
        var queries = new Dictionary<string, List<(long[] Shape, bool Trains)>>(StringComparer.Ordinal);
        var keys = new Dictionary<string, List<long[]>>(StringComparer.Ordinal);
        var hooks = new List<Action>();
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        var matmulConvolutions = new Dictionary<Conv2d, (long PerOutput, bool Trains)>(ReferenceEqualityComparer.Instance);
        void Add(double flops, bool trains)
        {
            if (trains) trainable += flops;
            else frozen += flops;
        }
        try
        {
            foreach (var root in roots)
                // TorchSharp's named_modules leaves out the root itself.
                foreach (var (name, module) in root.named_modules().Prepend(("", root)))
                {
                    if (!seen.Add(module)) continue;
                    if (module is Conv2d conv)
                    {
                        long perOutput = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3];
                        bool trains = conv.weight.requires_grad;
                        var remover = conv.register_forward_hook((_, _, output) => { convolutions++; Add(2.0 * output.numel() * perOutput, trains); return output; });
                        hooks.Add(remover.remove);
                        matmulConvolutions[conv] = (perOutput, trains);
                    }
                    else if (module is Linear linear)
                    {
                        long perOutput = linear.weight.shape[1];
                        bool trains = linear.weight.requires_grad;
                        string leaf = name[(name.LastIndexOf('.') + 1)..];
                        string owner = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
                        bool isQuery = AttentionProjections.Any(p => p.Query == leaf), isKey = AttentionProjections.Any(p => p.Key == leaf);
                        var remover = linear.register_forward_hook((_, _, output) =>
                        {
                            linears++;
                            Add(2.0 * output.numel() * perOutput, trains);
                            if (isQuery) CallsOf(queries, owner).Add((output.shape, trains));
                            if (isKey) CallsOf(keys, owner).Add(output.shape);
                            return output;
                        });
                        hooks.Add(remover.remove);
                    }
                }
            // Convolutions computed by MatmulConvolution (the U-Net's conv_out) bypass the module's forward hooks.
            MatmulConvolution.Observer = (conv, output) =>
            {
                if (!matmulConvolutions.TryGetValue(conv, out var shape)) return;
                convolutions++;
                Add(2.0 * output.numel() * shape.PerOutput, shape.Trains);
            };
            using (no_grad()) forward();
        }
        finally
        {
            MatmulConvolution.Observer = null;
            foreach (var remove in hooks) remove();
        }
        int attentions = 0;
        foreach (var (owner, calls) in queries)
        {
            if (!keys.TryGetValue(owner, out var keyCalls)) continue;
            for (int i = 0; i < Math.Min(calls.Count, keyCalls.Count); i++)
            {
                var (q, trains) = calls[i];
                var k = keyCalls[i];
                // q [B, N, C] and k [B, M, C]: scores B x N x M x C multiply-adds, the weighted sum as many again.
                Add(4.0 * q[0] * q[1] * k[1] * q[^1], trains);
                attentions++;
            }
        }
        return new FlopCount(trainable, frozen, convolutions, linears, attentions);
    }

    static List<T> CallsOf<T>(Dictionary<string, List<T>> table, string key)
    {
        if (!table.TryGetValue(key, out var list)) table[key] = list = [];
        return list;
    }
}
